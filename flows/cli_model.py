"""Subcommands of `sstcast` (see flows/cli.py)."""

from __future__ import annotations


def register(subparsers) -> None:
    """Add this area's subcommands to the `sstcast` parser."""
