"""One module per `lazylab` subcommand; each exposes `register(subparsers)`."""
