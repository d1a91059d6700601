"""Command-line entry points of this stage (see febm/cli.py)."""

from __future__ import annotations

import argparse


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Register this stage's subcommands; heavy imports belong inside the handlers."""
