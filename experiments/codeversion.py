"""`code_version`: a digest of the sources a run's outcome depends on.

A hash of the package sources rather than `git describe`: it changes exactly when code that can
change a result changes (an uncommitted edit included), and not when only reports or the CLI do.
The version string is `src-` + the first 16 hex digits of a sha256 over (relative path, bytes) of
every `*.py` file of the named packages, plus the module that defines the run function.
"""

from __future__ import annotations

import hashlib
import importlib.util
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any


def _package_files(package: str) -> list[Path]:
    spec = importlib.util.find_spec(package)
    if spec is None:
        return []
    if spec.submodule_search_locations:
        files: list[Path] = []
        for loc in spec.submodule_search_locations:
            files += sorted(p for p in Path(loc).rglob("*.py") if "__pycache__" not in p.parts)
        return files
    return [Path(spec.origin)] if spec.origin else []


def _digest_files(files: Iterable[Path]) -> str:
    h = hashlib.sha256()
    for path in files:
        h.update("/".join(path.parts[-2:]).encode() + b"\0")
        try:
            h.update(path.read_bytes())
        except OSError:
            h.update(b"<unreadable>")
        h.update(b"\0")
    return h.hexdigest()[:16]


def module_file(fn: Callable[..., Any]) -> Path | None:
    """The source file of the module defining `fn` (None for builtins)."""
    module = sys.modules.get(getattr(fn, "__module__", "") or "")
    origin = getattr(module, "__file__", None)
    return Path(origin) if origin else None


def code_version(packages: Iterable[str], extra: Iterable[Callable[..., Any]] = ()) -> str:
    """Digest of the sources of `packages` and of the modules defining the `extra` functions.

    Files are hashed in a stable order (package order, then sorted paths), each named by its
    last two path parts so the digest does not depend on where the checkout lives.
    """
    files: list[Path] = []
    for pkg in packages:
        files += _package_files(pkg)
    for fn in extra:
        f = module_file(fn)
        if f is not None and f not in files:
            files.append(f)
    return "src-" + _digest_files(files)
