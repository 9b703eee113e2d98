"""Entry point of the `lazylab` console script."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# Subcommand modules, in the order `lazylab --help` lists them.
COMMAND_MODULES = (
    "image",
    "registry",
    "lazy",
    "pull",
    "emulate",
    "simulate",
    "experiment",
    "store",
    "node",
    "demo",
)


class CliError(Exception):
    """A user error: printed as one line `lazylab: error: ...`, exit status 2 (or `.status`)."""

    def __init__(self, message: str, status: int = 2) -> None:
        super().__init__(message)
        self.status = status


# Exception types that mean "the user's input is wrong" rather than "lazylab has a bug".
# Command modules append their domain's error base classes here when they are imported.
USER_ERRORS: list[type[BaseException]] = [CliError]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lazylab",
        description="Predict and validate what lazy image pulling buys (zstd:chunked, eStargz, ALS).",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMAND_MODULES:
        module = importlib.import_module(f"lazylab.commands.{name}")
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        status = args.func(args)
    except KeyboardInterrupt:
        print("lazylab: interrupted", file=sys.stderr)
        return 130
    except tuple(USER_ERRORS) as e:  # one line, no traceback, for user errors
        print(f"lazylab: error: {e}", file=sys.stderr)
        return getattr(e, "status", 2) if isinstance(e, CliError) else 2
    return int(status or 0)


if __name__ == "__main__":
    sys.exit(main())
