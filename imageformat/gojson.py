"""The JSON details Go's `encoding/json` fixes, for byte-exact TOCs and tar-splits.

Strings: `<`, `>`, `&`, U+2028, U+2029 and control characters become `\\u00XX`-style escapes
(only `\\n`, `\\r`, `\\t` get short forms, as in Go 1.19), invalid UTF-8 (surrogate-escaped
bytes here) becomes `\\ufffd`. Times: RFC 3339 in UTC with fractional seconds trimmed of
trailing zeros (`time.Time.MarshalJSON`, spec formats.md §1.6).
"""

from __future__ import annotations

import datetime as _dt
import re

from imageformat.errors import InvalidTarError

NS = 1_000_000_000
GO_ZERO_TIME = "0001-01-01T00:00:00Z"
GO_ZERO_NS = -62135596800 * NS  # Go's zero time.Time as Unix nanoseconds
_EPOCH = _dt.datetime(1970, 1, 1)

_ESCAPE_RE = re.compile('[\x00-\x1f"\\\\<>&\u2028\u2029\udc80-\udcff]')
_SHORT = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(m: re.Match[str]) -> str:
    c = m.group(0)
    short = _SHORT.get(c)
    if short is not None:
        return short
    if "\udc80" <= c <= "\udcff":
        return "\\ufffd"
    return f"\\u{ord(c):04x}"


def go_string(s: str) -> str:
    """`s` as Go's encoding/json writes a string (with quotes)."""
    return '"' + _ESCAPE_RE.sub(_escape, s) + '"'


def go_time(ns: int) -> str:
    """Unix nanoseconds as Go's `time.Time` JSON (RFC 3339, UTC, trimmed fraction), quoted."""
    secs, frac = divmod(ns, NS)
    try:
        t = _EPOCH + _dt.timedelta(seconds=secs)
    except OverflowError:
        raise InvalidTarError(f"timestamp {ns} ns is outside years 1-9999") from None
    text = f"{t.year:04d}-{t.month:02d}-{t.day:02d}T{t.hour:02d}:{t.minute:02d}:{t.second:02d}"
    if frac:
        text += "." + f"{frac:09d}".rstrip("0")
    return '"' + text + 'Z"'


def parse_go_time(text: str) -> int:
    """RFC 3339 (any offset, up to 9 fractional digits) -> Unix nanoseconds. ValueError if invalid."""
    m = re.fullmatch(
        r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(?:([Zz])|([+-])(\d{2}):(\d{2}))",
        text,
    )
    if not m:
        raise ValueError(f"not an RFC 3339 time: {text[:40]!r}")
    y, mo, d, h, mi, s = (int(m.group(i)) for i in range(1, 7))
    t = _dt.datetime(y, mo, d, h, mi, s)
    secs = (t - _EPOCH) // _dt.timedelta(seconds=1)
    if m.group(9):
        off = (int(m.group(10)) * 60 + int(m.group(11))) * 60
        secs -= off if m.group(9) == "+" else -off
    frac = int((m.group(7) or "").ljust(9, "0"))
    return secs * NS + frac


__all__ = ["GO_ZERO_NS", "GO_ZERO_TIME", "go_string", "go_time", "parse_go_time"]
