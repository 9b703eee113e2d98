"""`lazylab store serve STORE_DIR`: the emulator's lazy store as a real Additional Layer Store."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from emulator.errors import EmulatorError
from lazylab.cli import USER_ERRORS

USER_ERRORS.append(EmulatorError)


def _serve(args: argparse.Namespace) -> int:
    from emulator.als.serve import serve
    from emulator.als.store import AdditionalLayerStore, AlsOptions

    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    options = AlsOptions(cache_dir=Path(args.cache_dir) if args.cache_dir else None)
    store = AdditionalLayerStore(options)
    try:
        serve(
            store,
            args.store_dir,
            on_ready=lambda: print(f"serving {args.store_dir}", flush=True),
            allow_other=args.allow_other,
        )
    finally:
        store.close()
    totals = store.counters.total()
    print(
        f"unmounted {args.store_dir}: toc {totals.bytes_toc} B, on demand {totals.bytes_on_demand} B, "
        f"{totals.requests} requests",
        flush=True,
    )
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("store", help="serve the lazy store as a containers/storage Additional Layer Store")
    ssub = p.add_subparsers(dest="store_command", metavar="ACTION")
    ssub.required = True
    s = ssub.add_parser(
        "serve",
        help="mount STORE_DIR (FUSE) with the <base64(ref)>/<digest>/{diff,info,blob} layout",
        description='Use with storage.conf: additionallayerstores = ["STORE_DIR:ref"].',
    )
    s.add_argument("store_dir", metavar="STORE_DIR")
    s.add_argument("--cache-dir", default=None, help="on-disk chunk cache (default: memory only)")
    s.add_argument("--allow-other", action="store_true", help="let other users see the mount")
    s.add_argument("-v", "--verbose", action="store_true", help="log resolutions and use/release signals")
    s.set_defaults(func=_serve)
