"""Subcommands of the ``minigrad-nets`` CLI: each module defines ``register(subparsers)``."""
