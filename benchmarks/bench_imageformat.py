"""Layer build throughput per format, and our zstd:chunked-legacy vs skopeo's zstd:chunked.

One generated tree (~64 MB: binaries, text, sparse data, many small files) becomes one tar.
Every format encodes that same tar (MB/s of input tar, wall clock, single process). Then
skopeo 1.9.3 converts an OCI layout whose only layer is that tar, uncompressed, with
`--dest-compress-format zstd:chunked` (containers/storage 1.43 = generation (a)); the ratio of our
zstd:chunked-legacy encode time to skopeo's copy time is the headline figure (< 1: we are faster).
Both sides also report how many chunks they cut and whether the chunk digests agree.

Usage: .venv/bin/python benchmarks/bench_imageformat.py [--size-mb 64] [--seed 0]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from imageformat.detect import BUILD_FORMATS, encode_layer, read_layer_toc
from imageformat.layer import MEDIA_TYPE_TAR
from imageformat.oci import Descriptor, OciLayout, new_config
from imageformat.sampletree import write_sample_tree
from imageformat.toc import LayerFormat, Toc
from imageformat.tree import write_tree_tar


def _chunk_digests(toc: Toc | None) -> set[str]:
    return {c.digest for e in toc.regular_files() for c in e.chunks if c.digest} if toc else set()


def _toc_of(path: Path, media_type: str, annotations: dict[str, str]) -> Toc | None:
    with open(path, "rb") as f:
        return read_layer_toc(media_type, annotations, f, path.stat().st_size)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-mb", type=float, default=64.0)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="lazylab-bench-"))
    try:
        tree = work / "tree"
        stats = write_sample_tree(tree, total_bytes=int(args.size_mb * (1 << 20)), seed=args.seed)
        tar = work / "layer.tar"
        with open(tar, "wb") as f:
            write_tree_tar(tree, f)
        tar_bytes = tar.stat().st_size
        print(f"input: {stats.files} files, tar of {tar_bytes / 1e6:.1f} MB, {os.cpu_count()} CPUs")
        rows = []
        ours: dict[LayerFormat, tuple[float, set[str]]] = {}
        for fmt in BUILD_FORMATS:
            out = work / f"out-{fmt.value.replace(':', '-')}"
            t0 = time.perf_counter()
            with open(tar, "rb") as src, open(out, "wb") as dst:
                layer = encode_layer(fmt, src, dst)
            seconds = time.perf_counter() - t0
            toc = _toc_of(out, layer.media_type, dict(layer.annotations))
            ours[fmt] = (seconds, _chunk_digests(toc))
            rows.append(
                (
                    fmt.value,
                    seconds,
                    tar_bytes / seconds / 1e6,
                    layer.size,
                    tar_bytes / layer.size,
                    toc.chunk_count if toc else 0,
                )
            )
            out.unlink()
        print()
        print(f"{'format':<22}{'seconds':>9}{'MB/s':>9}{'layer MB':>10}{'ratio':>8}{'chunks':>8}")
        for name, seconds, mbps, size, ratio, chunks in rows:
            print(f"{name:<22}{seconds:>9.2f}{mbps:>9.1f}{size / 1e6:>10.1f}{ratio:>8.2f}{chunks:>8}")

        skopeo = shutil.which("skopeo")
        if skopeo is None:
            print("\nskopeo not installed: no reference measurement")
            return 0
        src_oci = OciLayout.create(work / "src-oci")
        with src_oci.new_blob() as (blob, slot), open(tar, "rb") as f:
            shutil.copyfileobj(f, blob, 1 << 20)
            from imageformat.digest import Hasher

            h = Hasher()
            f.seek(0)
            while block := f.read(1 << 20):
                h.update(block)
            slot.append(h.digest())
        desc = Descriptor(media_type=MEDIA_TYPE_TAR, digest=slot[0], size=tar_bytes)
        src_oci.write_image(layers=[desc], config=new_config([slot[0]]), tag="t")
        dst = work / "skopeo-out"
        t0 = time.perf_counter()
        proc = subprocess.run(
            [
                skopeo,
                "--insecure-policy",
                "copy",
                "--dest-compress-format",
                "zstd:chunked",
                f"oci:{work / 'src-oci'}:t",
                f"oci:{dst}:t",
            ],
            capture_output=True,
            text=True,
        )
        skopeo_s = time.perf_counter() - t0
        if proc.returncode != 0:
            print(f"\nskopeo failed: {proc.stderr.strip()}")
            return 1
        sk_layout = OciLayout.open(dst)
        sk_desc = sk_layout.resolve("t").layers[0]
        sk_toc = _toc_of(sk_layout.blob_path(sk_desc.digest), sk_desc.media_type, dict(sk_desc.annotations))
        sk_digests = _chunk_digests(sk_toc)
        legacy_s, legacy_digests = ours[LayerFormat.ZSTD_CHUNKED_LEGACY]
        gen_b_s, _ = ours[LayerFormat.ZSTD_CHUNKED]
        print()
        print(
            f"skopeo copy --dest-compress-format zstd:chunked: {skopeo_s:.2f} s "
            f"({tar_bytes / skopeo_s / 1e6:.1f} MB/s), {sk_toc.chunk_count if sk_toc else 0} chunks, "
            f"layer {sk_desc.size / 1e6:.1f} MB"
        )
        print(
            f"ratio ours zstd:chunked-legacy / skopeo = {legacy_s / skopeo_s:.2f}  (< 1 means we are faster)"
        )
        print(f"ratio ours zstd:chunked (gen b) / skopeo = {gen_b_s / skopeo_s:.2f}")
        print(
            f"chunk digests identical to skopeo's: {legacy_digests == sk_digests} "
            f"({len(legacy_digests)} ours, {len(sk_digests)} skopeo's)"
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
