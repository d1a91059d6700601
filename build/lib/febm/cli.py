"""The ``febm`` command line: thin entry points, one subcommand per pipeline stage.

Each stage module exposes ``add_commands(subparsers)`` and keeps heavy imports inside its handlers so
that ``febm --help`` stays fast. Handlers receive the parsed arguments and return an exit status.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from febm import __version__
from febm.errors import FebmError

COMMAND_MODULES = [
    "febm.commands_core",
    "febm.toy.commands",
    "febm.images.commands",
    "febm.evaluation.commands",
    "febm.evaluation.classifier_commands",
    "febm.evaluation.classifier_table",
    "febm.evaluation.classifier_curve",
    "febm.reporting.commands",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="febm",
        description="Train and evaluate energy-based models with f-divergences (f-EBM, ICML 2020).",
    )
    parser.add_argument("--version", action="version", version=f"febm {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).add_commands(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except FebmError as error:
        print(f"febm {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"febm {args.command}: interrupted", file=sys.stderr)
        return 130
