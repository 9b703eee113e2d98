"""The `lazylab` command line: parses arguments, wires components, prints. No domain logic.

Each subcommand lives in `lazylab/commands/<name>.py` and exposes `register(subparsers)`.
"""
