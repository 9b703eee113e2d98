"""Go encoding/json details the zstd:chunked TOC and tar-split bytes depend on (formats.md §1.6)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imageformat.gojson import GO_ZERO_NS, GO_ZERO_TIME, go_string, go_time, parse_go_time


@pytest.mark.parametrize(
    ("ns", "text"),
    [
        (1_700_000_000 * 10**9, "2023-11-14T22:13:20Z"),
        (1_700_000_000 * 10**9 + 500_000_000, "2023-11-14T22:13:20.5Z"),
        (1_764_327_994_781_186_300, "2025-11-28T11:06:34.7811863Z"),
        (0, "1970-01-01T00:00:00Z"),
        (-1_500_000_000, "1969-12-31T23:59:58.5Z"),
        (GO_ZERO_NS, GO_ZERO_TIME),
    ],
)
def test_go_time(ns: int, text: str) -> None:
    assert go_time(ns) == f'"{text}"'
    assert parse_go_time(text) == ns


def test_parse_go_time_with_offsets() -> None:
    assert parse_go_time("2023-11-14T23:13:20+01:00") == 1_700_000_000 * 10**9
    with pytest.raises(ValueError):
        parse_go_time("2023-11-14 22:13:20")


@pytest.mark.parametrize(
    ("s", "encoded"),
    [
        ("a<b>&c", '"a\\u003cb\\u003e\\u0026c"'),
        ("tab\tnl\ncr\r", '"tab\\tnl\\ncr\\r"'),
        ("\x08\x0c\x01", '"\\u0008\\u000c\\u0001"'),
        ('q"b\\', '"q\\"b\\\\"'),
        ("\u2028\u2029", '"\\u2028\\u2029"'),
        ("日本\x7f", '"日本\x7f"'),
        (b"bad\xff\xfe".decode("utf-8", "surrogateescape"), '"bad\\ufffd\\ufffd"'),
    ],
)
def test_go_string(s: str, encoded: str) -> None:
    assert go_string(s) == encoded


@settings(max_examples=50, deadline=None)
@given(st.text())
def test_go_string_is_json_for_valid_text(s: str) -> None:
    if any("\ud800" <= c <= "\udfff" for c in s):
        return
    assert json.loads(go_string(s)) == s
