"""Subcommands about the method itself: list the registered divergences."""

from __future__ import annotations

import argparse
import json


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("divergences", help="list the registered f-divergences")
    parser.add_argument("--json", action="store_true", help="print name, f''(1) and formulas as JSON")
    parser.set_defaults(handler=list_divergences)


def list_divergences(args: argparse.Namespace) -> int:
    from febm.divergences import available_divergences, get_divergence

    rows = []
    for name in available_divergences():
        if name.startswith("alpha_<"):
            rows.append({"name": name, "f_second_derivative_at_one": 1.0})
            continue
        div = get_divergence(name)
        rows.append(
            {
                "name": name,
                "f_second_derivative_at_one": div.f_second_derivative_at_one,
                "doc": (type(div).__doc__ or "").strip(),
            }
        )
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        for row in rows:
            print(f"{row['name']:<22} f''(1) = {row['f_second_derivative_at_one']:<4} {row.get('doc', '')}")
    return 0
