"""The lazy store through its blocking view, against docker-registry, for every format built."""

from __future__ import annotations

import errno

import pytest
from emulator_fixtures import sample_files

from emulator.errors import NotLazyError
from emulator.lazyview import LazyOptions, open_lazy_view
from emulator.store import Granularity, StoreOptions
from imageformat.toc import EntryType

pytestmark = pytest.mark.interop


@pytest.mark.parametrize("granularity", [Granularity.CHUNK, Granularity.BLOCK])
def test_every_format_reads_right(built_images: dict[str, str], granularity: Granularity) -> None:
    files = sample_files()
    assert "estargz" in built_images and "gzip" in built_images
    for fmt, ref in built_images.items():
        if fmt == "gzip":
            with pytest.raises(NotLazyError):
                open_lazy_view(ref)
            continue
        with open_lazy_view(ref, LazyOptions(store=StoreOptions(granularity=granularity))) as view:
            assert view.read("etc/hello", 0, 100) == b"hi\n", fmt
            big = files["usr/bin/big"]
            assert isinstance(big, bytes)
            assert view.read("usr/bin/big", 1_000_000, 5000) == big[1_000_000:1_005_000]
            assert view.read("usr/bin/link", 0, 10) == big[:10]  # symlink followed
            assert view.read("usr/bin/hard", 2_999_990, 100) == big[2_999_990:]
            st = view.stat("usr/bin/hard")
            assert st.type is EntryType.REG and st.size == len(big) and st.nlink == 2
            assert st.ino == view.stat("usr/bin/big").ino
            assert view.stat("usr/bin/link").type is EntryType.SYMLINK
            assert view.readlink("usr/bin/link") == "big"
            assert set(view.listdir(".")) >= {"etc", "usr", "var"}
            assert view.read("var/empty", 0, 10) == b""
            with pytest.raises(OSError) as ei:
                view.stat("nope")
            assert ei.value.errno == errno.ENOENT
            with pytest.raises(OSError) as ei:
                view.read("etc", 0, 1)
            assert ei.value.errno == errno.EISDIR


def test_skopeo_zstd_chunked_small_read_moves_little(pushed_image: tuple[str, dict]) -> None:
    """skopeo 1.9.3 `--dest-compress-format zstd:chunked` output, read lazily from docker-registry."""
    ref, files = pushed_image
    with open_lazy_view(ref) as view:
        layer_size = view.store.layers[0].size
        assert view.read("etc/hello", 0, 100) == b"hi\n"
        totals = view.store.totals()
        assert totals.bytes_on_demand < 1000  # one tiny frame
        assert totals.bytes_total < 0.02 * layer_size  # TOC + that frame: a small fraction
        for name, content in files.items():
            if isinstance(content, bytes):
                assert view.read(name, 0, len(content) + 1) == content, name
        assert view.store.totals().cache_misses > 0
