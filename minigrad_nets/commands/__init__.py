"""Subcommands of the ``minigrad-nets`` CLI: each module defines ``register(subparsers)``.

Modules whose names start with '_' hold shared helpers (argument types, data loading), not subcommands.
"""
