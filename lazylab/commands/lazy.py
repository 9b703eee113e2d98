"""`lazylab lazy` (not implemented yet)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the `lazy` subcommand (placeholder: nothing registered until its issue lands)."""
