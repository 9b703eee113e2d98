"""Deterministic sample file trees with a realistic mix, for the demo, benchmarks and tests.

A tree of about `total_bytes` bytes: binaries (random bytes, incompressible), text (words,
compressible), sparse-ish data files (zero runs between data, so zstd:chunked finds holes),
many small config files, empty files, symlinks and a hardlink, with fixed mtimes. The same seed
always gives the same bytes (numpy SeedSequence, no global state).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

_WORDS = np.array(
    b"the of and to in is for on with as by at from container image layer pull lazy chunk zstd gzip "
    b"registry node start ready read file range bytes fuse store cache manifest config digest index "
    b"error warning info debug service request response handler socket thread process memory".split(),
    dtype=object,
)
FIXED_MTIME = 1_700_000_000


@dataclass(frozen=True, kw_only=True)
class SampleTreeStats:
    files: int
    total_bytes: int


def _text(rng: np.random.Generator, size: int) -> bytes:
    words = _WORDS[rng.integers(0, len(_WORDS), size // 5 + 16)]
    lines = b" ".join(words)
    return lines.replace(b" error ", b"\nerror ")[:size]


def _sparse(rng: np.random.Generator, size: int) -> bytes:
    out = bytearray()
    while len(out) < size:
        out += rng.bytes(int(rng.integers(512, 32768)))
        out += bytes(int(rng.integers(1024, 65536)))
    return bytes(out[:size])


def write_sample_tree(root: Path | str, *, total_bytes: int = 4 << 20, seed: int = 0) -> SampleTreeStats:
    """Write the tree under `root` (created; must be empty or absent)."""
    if total_bytes < 0:
        raise ValueError(f"total_bytes (={total_bytes}) must be >= 0")
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(np.random.SeedSequence(seed))
    dirs = [
        "usr/bin",
        "usr/lib/python3/site",
        "usr/share/doc/app",
        "etc/app.d",
        "var/lib/data",
        "opt/app/static",
    ]
    for d in dirs:
        (root / d).mkdir(parents=True, exist_ok=True)
    kinds = [
        ("usr/bin", "bin", 0.35),
        ("usr/share/doc/app", "txt", 0.15),
        ("usr/lib/python3/site", "py", 0.15),
        ("var/lib/data", "dat", 0.2),
        ("opt/app/static", "js", 0.15),
    ]
    written, files = 0, 0
    for directory, ext, share in kinds:
        budget = int(total_bytes * share)
        i = 0
        while budget > 0:
            size = min(budget, int(rng.lognormal(mean=9.5, sigma=1.6)) + 1)
            if ext == "bin":
                data = rng.bytes(size)
            elif ext == "dat":
                data = _sparse(rng, size)
            else:
                data = _text(rng, size)
            (root / directory / f"f{i:04d}.{ext}").write_bytes(data)
            budget -= size
            written += size
            files += 1
            i += 1
    for i in range(20):
        (root / "etc/app.d" / f"conf{i:02d}.conf").write_bytes(_text(rng, int(rng.integers(20, 400))))
        files += 1
    (root / "etc/app.d/empty").write_bytes(b"")
    (root / "etc/app.d/ünïcode näme.conf").write_bytes(b"x = 1\n")
    files += 2
    os.symlink("f0000.bin", root / "usr/bin/link-to-first")
    os.symlink("/etc/app.d/conf00.conf", root / "etc/app.conf")
    first = root / "usr/bin/f0000.bin"
    if first.exists():
        os.link(first, root / "usr/bin/hardlink-to-first")
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames, "."]:
            os.utime(os.path.join(dirpath, name), (FIXED_MTIME, FIXED_MTIME), follow_symlinks=False)
    return SampleTreeStats(files=files, total_bytes=written)


__all__ = ["FIXED_MTIME", "SampleTreeStats", "write_sample_tree"]
