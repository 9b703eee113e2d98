"""Real images for calibration, validation and the studies: recipes, builds in every format, a cache.

A recipe (`RECIPES`) names a root file system made from software on this machine (see
`experiments.realimages_trees`): `busybox` (a few MB), `python` (Debian's python3.11 with its
standard library, tens of MB), `debian` (debootstrap minbase + python3, perl, gcc: a few hundred
MB, minutes to build, network needed). `prepare_image(name, fmt)` returns an OCI layout holding
the one-layer image `name` in layer format `fmt`, building what is missing:

    $LAZYLAB_CACHE/images/trees/<name>-<tree key>/          the collected root (kept: traces are
                                                            checked against it, formats built from it)
    $LAZYLAB_CACHE/images/oci/<name>-<format>-<oci key>/    the OCI layout, tag = name
    $LAZYLAB_CACHE/images/oci/<name>-<format>-<oci key>.json  BuiltImage: sizes, build time

The tree key hashes the recipe's input fingerprint (package versions, binary digests, mirror) and
the tree code; the OCI key adds the image-format code version, so editing an encoder rebuilds the
layers but never re-runs debootstrap. `LAZYLAB_CACHE` defaults to `~/.cache/lazylab`. Builds go to
a temporary sibling and are renamed into place under a per-recipe lock: concurrent callers wait.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from experiments import realimages_trees as trees
from experiments.codeversion import code_version
from experiments.realimages_trees import ImageRecipeError
from imageformat.build import build_image
from imageformat.detect import read_layer_toc
from imageformat.oci import OciLayout
from imageformat.toc import LayerFormat, Toc

FORMATS: tuple[LayerFormat, ...] = (
    LayerFormat.GZIP,
    LayerFormat.ZSTD,
    LayerFormat.ESTARGZ,
    LayerFormat.ZSTD_CHUNKED,
    LayerFormat.ZSTD_CHUNKED_LEGACY,
)
TREE_FORMAT_VERSION = 1  # bump when a collector's output changes without its inputs changing


@dataclass(frozen=True, kw_only=True)
class ImageRecipe:
    name: str
    description: str
    fingerprint: Callable[[], str]  # cheap: names the inputs (package versions, digests)
    collect: Callable[[Path], None]  # fills an empty directory
    cheap: bool  # fine to build in the default test suite


def _collect_debian(root: Path) -> None:
    trees.collect_debian(root, cache_dir=cache_root() / "debootstrap-debs")


RECIPES: dict[str, ImageRecipe] = {
    r.name: r
    for r in (
        ImageRecipe(
            name="busybox",
            description="Debian busybox-static, applet links, /etc, /app/start.sh",
            fingerprint=trees.fingerprint_busybox,
            collect=trees.collect_busybox,
            cheap=True,
        ),
        ImageRecipe(
            name="python",
            description="Debian python3.11 + standard library + shared libraries",
            fingerprint=trees.fingerprint_python,
            collect=trees.collect_python,
            cheap=True,
        ),
        ImageRecipe(
            name="debian",
            description="debootstrap minbase bookworm + python3, perl, gcc",
            fingerprint=trees.fingerprint_debian,
            collect=_collect_debian,
            cheap=False,
        ),
    )
}


@dataclass(frozen=True, kw_only=True)
class BuiltImage:
    """One recipe built in one format: where it is and what it costs."""

    name: str
    format: str
    oci_dir: str
    tag: str
    manifest_digest: str
    blob_bytes: int  # compressed layer size
    tar_bytes: int  # the layer tar fed to the encoder
    file_bytes: int  # sum of regular file sizes in the tree
    files: int
    build_s: float  # encoding wall time on this machine
    tree_key: str
    code_version: str = ""  # of imageformat, when it was built

    @property
    def path(self) -> Path:
        return Path(self.oci_dir)


def cache_root() -> Path:
    env = os.environ.get("LAZYLAB_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "lazylab"


def recipe(name: str) -> ImageRecipe:
    try:
        return RECIPES[name]
    except KeyError:
        raise ImageRecipeError(
            f"unknown image recipe {name!r} (choose one of: {', '.join(RECIPES)})"
        ) from None


def _fmt(fmt: LayerFormat | str) -> LayerFormat:
    try:
        return LayerFormat(fmt)
    except ValueError:
        raise ImageRecipeError(
            f"unknown layer format {fmt!r} (choose one of: {', '.join(f.value for f in FORMATS)})"
        ) from None


def _key(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]


_TREE_KEYS: dict[str, str] = {}  # per process: fingerprints run dpkg-query, sweeps ask often


def tree_key(name: str) -> str:
    """The cache key of recipe `name`'s tree (inputs + tree code); computed once per process."""
    if name not in _TREE_KEYS:
        r = recipe(name)
        tree_code = code_version([], extra=[trees.collect_busybox])
        _TREE_KEYS[name] = _key(name, str(TREE_FORMAT_VERSION), r.fingerprint(), tree_code)
    return _TREE_KEYS[name]


def _slug(fmt: LayerFormat) -> str:
    return fmt.value.replace(":", "-")


@contextmanager
def _locked(name: str) -> Iterator[None]:
    base = cache_root() / "images"
    base.mkdir(parents=True, exist_ok=True)
    with open(base / f".lock-{name}", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _fresh(path: Path) -> Path:
    tmp = path.with_name(path.name + f".tmp-{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    return tmp


def prepare_tree(name: str) -> Path:
    """The collected root of recipe `name` (built on first use, then cached)."""
    key = tree_key(name)
    final = cache_root() / "images" / "trees" / f"{name}-{key}"
    if final.is_dir():
        return final
    with _locked(name):
        if final.is_dir():
            return final
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = _fresh(final)
        tmp.mkdir()
        try:
            recipe(name).collect(tmp)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        os.rename(tmp, final)
    return final


def _tree_stats(root: Path) -> tuple[int, int]:
    files = size = 0
    for dirpath, _, names in os.walk(root):
        for n in names:
            p = os.path.join(dirpath, n)
            if os.path.isfile(p) and not os.path.islink(p):
                files += 1
                size += os.lstat(p).st_size
    return files, size


def image_record(
    name: str, fmt: LayerFormat | str = LayerFormat.ZSTD_CHUNKED, *, prioritize: Sequence[str] | None = None
) -> BuiltImage:
    """Build (or find in the cache) recipe `name` in format `fmt`; its BuiltImage record.

    `prioritize` (lazy formats): paths to put first, followed by `.prefetch.landmark` (the
    "recorded list" prefetch of stargz-store); e.g. `prefetch_paths(trace)` of a recorded trace.
    """
    layer_format = _fmt(fmt)
    tree = prepare_tree(name)
    tkey = tree.name.rsplit("-", 1)[1]
    prio = list(prioritize) if prioritize and layer_format.lazy else []
    version = code_version(["imageformat"])
    okey = _key(tkey, layer_format.value, version, "\n".join(prio))
    suffix = "-prio" if prio else ""
    final = cache_root() / "images" / "oci" / f"{name}-{_slug(layer_format)}{suffix}-{okey}"
    meta = final.with_name(final.name + ".json")
    if final.is_dir() and meta.is_file():
        return BuiltImage(**json.loads(meta.read_text()))
    with _locked(name):
        if final.is_dir() and meta.is_file():
            return BuiltImage(**json.loads(meta.read_text()))
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = _fresh(final)
        t0 = time.perf_counter()
        try:
            result = build_image(tree, tmp, name, layer_format, prioritize=prio or None)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        build_s = time.perf_counter() - t0
        if final.exists():
            shutil.rmtree(final)
        os.rename(tmp, final)
        files, file_bytes = _tree_stats(tree)
        built = BuiltImage(
            name=name,
            format=layer_format.value,
            oci_dir=str(final),
            tag=name,
            manifest_digest=result.manifest_digest,
            blob_bytes=sum(la.size for la in result.layers),
            tar_bytes=result.input_tar_bytes,
            file_bytes=file_bytes,
            files=files,
            build_s=round(build_s, 3),
            tree_key=tkey,
            code_version=version,
        )
        meta.write_text(json.dumps(asdict(built), indent=1) + "\n")
    return built


def prepare_image(
    name: str, fmt: LayerFormat | str = LayerFormat.ZSTD_CHUNKED, *, prioritize: Sequence[str] | None = None
) -> Path:
    """The OCI layout holding image `name` (tag = name) in layer format `fmt`; built if missing."""
    return image_record(name, fmt, prioritize=prioritize).path


def load_tocs(oci_dir: Path | str, tag: str | None = None) -> list[Toc]:
    """The verified TOC of every layer of a lazy image in an OCI layout (ImageRecipeError if plain)."""
    layout = OciLayout.open(oci_dir)
    image = layout.resolve(tag)
    tocs = []
    for desc in image.layers:
        with layout.open_blob(desc) as blob:
            toc = read_layer_toc(desc.media_type, desc.annotations, blob, desc.size)
        if toc is None:
            raise ImageRecipeError(f"{oci_dir}: layer {desc.digest[:19]} has no TOC (not a lazy format)")
        tocs.append(toc)
    return tocs


# -- command line: `python -m experiments.realimages build NAME... [--format F]...` -----------------


def _print_table(rows: Sequence[BuiltImage]) -> None:
    print(
        f"{'image':<8} {'format':<20} {'files':>6} {'file MB':>9} {'blob MB':>9} {'ratio':>6} {'build s':>8}"
    )
    for b in rows:
        ratio = b.blob_bytes / b.file_bytes if b.file_bytes else 0.0
        print(
            f"{b.name:<8} {b.format:<20} {b.files:>6} {b.file_bytes / 1e6:>9.2f} {b.blob_bytes / 1e6:>9.2f} "
            f"{ratio:>6.3f} {b.build_s:>8.2f}"
        )


def run_build(args: argparse.Namespace) -> int:
    formats = [_fmt(f) for f in (args.format or [f.value for f in FORMATS])]
    rows = []
    for name in args.names:
        for fmt in formats:
            rows.append(image_record(name, fmt))
            if args.paths:
                print(rows[-1].oci_dir, flush=True)
    _print_table(rows)
    return 0


def add_realimages_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("names", metavar="NAME", nargs="+", choices=sorted(RECIPES), help="image recipe(s)")
    p.add_argument(
        "--format",
        action="append",
        metavar="F",
        help="layer format (repeatable; default: all of " + ", ".join(f.value for f in FORMATS) + ")",
    )
    p.add_argument("--paths", action="store_true", help="print each OCI layout directory")
    p.set_defaults(func=run_build)


def add_realimages_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:  # type: ignore[type-arg]
    """CLI hook: `<parent> real NAME... [--format F]` (e.g. under `lazylab image`)."""
    p = sub.add_parser("real", help="build the real images (busybox, python, debian) into the cache")
    add_realimages_arguments(p)
    return p


def prune() -> list[Path]:
    """Remove cached trees and images that current code and inputs would not use; the removed paths.

    Recipes whose inputs cannot be fingerprinted here (a package or tool missing) are left alone.
    """
    base = cache_root() / "images"
    version = code_version(["imageformat"])
    known = [n for n in RECIPES if _fingerprint_ok(n)]
    current_trees = {f"{n}-{tree_key(n)}" for n in known}
    removed: list[Path] = []
    for meta in sorted((base / "oci").glob("*.json")):
        try:
            built = BuiltImage(**json.loads(meta.read_text()))
        except (ValueError, TypeError):
            continue  # not ours to judge
        if built.name not in known:
            continue
        if f"{built.name}-{built.tree_key}" not in current_trees or built.code_version != version:
            shutil.rmtree(meta.with_suffix(""), ignore_errors=True)
            meta.unlink()
            removed.append(meta.with_suffix(""))
    for tree in sorted((base / "trees").glob("*")):
        name = tree.name.rsplit("-", 1)[0]
        building = ".tmp-" in tree.name
        if tree.is_dir() and not building and name in known and tree.name not in current_trees:
            shutil.rmtree(tree, ignore_errors=True)
            removed.append(tree)
    return removed


def _fingerprint_ok(name: str) -> bool:
    try:
        tree_key(name)
    except ImageRecipeError:
        return False
    return True


def run_prune(args: argparse.Namespace) -> int:
    for path in prune():
        print(f"removed {path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m experiments.realimages",
        description="build the real images into the cache (" + str(cache_root()) + ")",
    )
    sub = parser.add_subparsers(dest="cmd", required=True)
    add_realimages_arguments(sub.add_parser("build", help="build recipes in formats"))
    sub.add_parser("prune", help="remove stale builds from the cache").set_defaults(func=run_prune)
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except ImageRecipeError as e:
        print(f"lazylab: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
