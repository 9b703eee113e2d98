"""`lazylab registry`: serve the mock OCI registry, seed it from an OCI layout, manage its users."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import getpass
import signal
import sys

from lazylab import cli
from registry_mock import preciseloop
from registry_mock.app import start_registry
from registry_mock.auth import add_user
from registry_mock.config import (
    AuthMode,
    RegistrySpec,
    load_profile,
    parse_duration,
    parse_fault_spec,
    parse_rate,
)
from registry_mock.errors import RegistryConfigError
from registry_mock.importer import import_oci_layout

cli.USER_ERRORS.append(RegistryConfigError)


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("registry", help="mock OCI registry: serve, import, adduser")
    rsub = p.add_subparsers(dest="registry_command", metavar="ACTION")
    rsub.required = True

    s = rsub.add_parser("serve", help="serve a registry; prints its URL when ready")
    s.add_argument("--root", help="storage directory (default: in memory)")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=5000, help="0 picks a free port")
    s.add_argument("--profile", help="TOML profile ([registry] [link] [auth] [faults])")
    s.add_argument("--bandwidth", help="per-connection bandwidth, e.g. 100Mbit")
    s.add_argument("--egress-bandwidth", help="registry-wide egress shared by all transfers, e.g. 1Gbit")
    s.add_argument("--latency", help="added latency per request, e.g. 20ms")
    s.add_argument("--rate-limit", type=float, help="requests/s before 429")
    s.add_argument("--max-concurrent", type=int, help="concurrent body transfers")
    s.add_argument("--overload", choices=["dragonfly", "none"],
                   help="efficiency curve vs concurrent transfers")
    s.add_argument("--auth", choices=["none", "token"])
    s.add_argument("--users", help="users file (see `lazylab registry adduser`)")
    s.add_argument("--allow-anonymous-pull", action="store_true")
    s.add_argument("--faults", help="e.g. 'seed=1;range-ignore,repo=ns/*;5xx:0.1'")
    s.add_argument("--max-ranges", type=int)
    s.add_argument("--access-log", help="JSON-lines access log file")
    s.set_defaults(func=_serve)

    i = rsub.add_parser("import", help="seed a registry root from an OCI layout (no HTTP)")
    i.add_argument("oci_dir")
    i.add_argument("ref", metavar="REPO:TAG")
    i.add_argument("--root", required=True)
    i.set_defaults(func=_import)

    a = rsub.add_parser("adduser", help="add a user (scrypt hash) to a users file")
    a.add_argument("file")
    a.add_argument("user")
    a.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    a.set_defaults(func=_adduser)


def spec_from_args(args: argparse.Namespace) -> RegistrySpec:
    spec = load_profile(args.profile) if args.profile else RegistrySpec()
    link = spec.link
    if args.bandwidth:
        link = dataclasses.replace(link, bandwidth_bytes_per_s=parse_rate(args.bandwidth))
    if args.egress_bandwidth:
        link = dataclasses.replace(link, egress_bandwidth_bytes_per_s=parse_rate(args.egress_bandwidth))
    if args.latency:
        link = dataclasses.replace(link, latency_s=parse_duration(args.latency))
    if args.rate_limit is not None:
        link = dataclasses.replace(link, rate_limit_per_s=args.rate_limit)
    if args.max_concurrent is not None:
        link = dataclasses.replace(link, max_concurrent_transfers=args.max_concurrent)
    if args.overload:
        from registry_mock.config import DRAGONFLY_CURVE

        curve = DRAGONFLY_CURVE if args.overload == "dragonfly" else None
        link = dataclasses.replace(link, overload_curve=curve)
    auth = spec.auth
    if args.auth or args.users or args.allow_anonymous_pull:
        auth = dataclasses.replace(
            auth,
            mode=AuthMode(args.auth) if args.auth else auth.mode,
            users_file=args.users or auth.users_file,
            allow_anonymous_pull=args.allow_anonymous_pull or auth.allow_anonymous_pull,
        )
    faults = parse_fault_spec(args.faults) if args.faults else spec.faults
    kw = {"link": link, "auth": auth, "faults": faults}
    if args.root:
        kw["root"] = args.root
    if args.access_log:
        kw["access_log"] = args.access_log
    if args.max_ranges is not None:
        kw["max_ranges"] = args.max_ranges
    return dataclasses.replace(spec, **kw)  # type: ignore[arg-type]


def _serve(args: argparse.Namespace) -> int:
    spec = spec_from_args(args)

    async def run() -> None:
        try:
            reg = await start_registry(spec, args.host, args.port)
        except OSError as e:
            raise cli.CliError(f"cannot listen on {args.host}:{args.port}: {e.strerror}") from None
        print(reg.url, flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        await reg.stop()

    preciseloop.run(run())
    return 0


def _import(args: argparse.Namespace) -> int:
    repo, sep, tag = args.ref.rpartition(":")
    if not sep or "/" in tag:
        raise cli.CliError(f"{args.ref!r} is not REPO:TAG")
    digest = import_oci_layout(args.oci_dir, repo, tag, args.root)
    print(f"{repo}:{tag} {digest}")
    return 0


def _adduser(args: argparse.Namespace) -> int:
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass(f"password for {args.user}: ")
    if not password:
        raise cli.CliError("the password must not be empty")
    add_user(args.file, args.user, password)
    return 0
