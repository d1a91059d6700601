"""Command-line entry points of the 1-D study (see docs/DESIGN.md for the contract)."""

from __future__ import annotations

import argparse
import json
import sys


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Register this stage's subcommands; heavy imports belong inside the handlers."""
    parser = subparsers.add_parser(
        "toy-optimum", help="exact minimiser (mu*, sigma*) of D_f(p||N(mu, sigma^2))"
    )
    parser.add_argument(
        "--config", nargs="+", required=True, metavar="C", help="YAML config(s), merged in order"
    )
    parser.add_argument("--divergence", required=True, help="f-divergence name (see `febm divergences`)")
    parser.add_argument("--out", required=True, help="output JSON, e.g. results/toy/optimum/kl.json")
    parser.set_defaults(handler=optimum_command)

    parser = subparsers.add_parser("toy-train", help="one 1-D training run (f-EBM, or CD / MLE on KL)")
    parser.add_argument("--config", nargs="+", required=True, metavar="C")
    parser.add_argument("--method", required=True, choices=["febm", "cd", "mle"])
    parser.add_argument("--divergence", required=True, help="f-divergence (cd and mle: kl)")
    parser.add_argument("--seed", required=True, type=int)
    parser.add_argument("--optimum", required=True, help="the divergence's optimum JSON (from toy-optimum)")
    parser.add_argument(
        "--out-dir", required=True, help="writes metrics.json, trajectory.csv, h.pt (resumes)"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument(
        "--allow-failure",
        action="store_true",
        help="a run that diverges is recorded in metrics.json (status: failed) either way; with this flag the "
        "command then exits 0 (the workflow's toy_check rule reports it), without it exits 1",
    )
    parser.set_defaults(handler=train_command)

    parser = subparsers.add_parser(
        "toy-convergence", help="trajectories from random initialisations (Fig. 4)"
    )
    parser.add_argument("--config", nargs="+", required=True, metavar="C")
    parser.add_argument("--divergence", required=True)
    parser.add_argument("--optimum", required=True)
    parser.add_argument("--out", required=True, help="output CSV, e.g. results/toy/convergence/kl.csv")
    parser.set_defaults(handler=convergence_command)

    parser = subparsers.add_parser(
        "toy-stability", help="Theorem 5: Jacobian spectrum at the learned equilibrium"
    )
    parser.add_argument("--config", nargs="+", required=True, metavar="C")
    parser.add_argument("--divergence", required=True)
    parser.add_argument("--optimum", required=True)
    parser.add_argument(
        "--run-dirs", nargs="+", required=True, metavar="DIR", help="f-EBM runs of this divergence"
    )
    parser.add_argument("--out", required=True, help="output JSON, e.g. results/toy/stability/kl.json")
    parser.set_defaults(handler=stability_command)

    parser = subparsers.add_parser("toy-table", help="Table 5 (Appendix F.1)")
    parser.add_argument("--config", nargs="+", required=True, metavar="C")
    parser.add_argument("--optima", nargs="+", required=True, metavar="OPT")
    parser.add_argument("--runs", nargs="+", required=True, metavar="DIR")
    parser.add_argument("--paper", required=True, help="febm/data/reported_results.csv")
    parser.add_argument("--out", required=True, help="results/tables/table5.csv")
    parser.set_defaults(handler=table_command)

    parser = subparsers.add_parser(
        "toy-check", help="exit non-zero, naming them, if any 1-D run was recorded as failed"
    )
    parser.add_argument("--runs", nargs="+", required=True, metavar="DIR", help="toy run folders")
    parser.add_argument(
        "--out", required=True, help="written only when no run failed, e.g. results/toy/check.json"
    )
    parser.set_defaults(handler=check_command)

    parser = subparsers.add_parser("toy-figure", help="Figures 1-4 of the 1-D study (PNG and PDF)")
    parser.add_argument("--figure", required=True, type=int, choices=[1, 2, 3, 4])
    parser.add_argument("--config", nargs="+", required=True, metavar="C")
    parser.add_argument("--optima", nargs="+", required=True, metavar="OPT")
    parser.add_argument("--runs", nargs="+", required=True, metavar="DIR")
    parser.add_argument(
        "--convergence", nargs="*", default=[], metavar="CSV", help="figure 4: trajectory CSVs"
    )
    parser.add_argument(
        "--out", required=True, help="results/figures/figureN.png (the .pdf is written beside)"
    )
    parser.set_defaults(handler=figure_command)

    parser = subparsers.add_parser("toy-study", help="the whole 1-D study in one process pool (all stages)")
    parser.add_argument(
        "--preset",
        default="quick",
        choices=["paper", "laptop", "quick", "smoke"],
        help="config/config.yaml + config/<preset>.yaml where they exist, else schema defaults",
    )
    parser.add_argument("--config", nargs="*", default=[], metavar="C", help="further YAML overlays")
    parser.add_argument("--out", default="results", help="results folder (default: results)")
    parser.add_argument("--jobs", type=int, default=None, help="worker processes (default: CPU count)")
    parser.set_defaults(handler=study_command)


def optimum_command(args: argparse.Namespace) -> int:
    from febm.config import load_config
    from febm.toy.runs import run_optimum

    result = run_optimum(load_config(args.config), args.divergence, args.out)
    print(
        f"{args.divergence}: mu* = {result['mu']:.6f}, sigma* = {result['sigma']:.6f}, "
        f"D_f = {result['divergence_value']:.6g} -> {args.out}"
    )
    return 0


def train_command(args: argparse.Namespace) -> int:
    from febm.config import load_config
    from febm.toy.runs import run_training

    metrics = run_training(
        load_config(args.config),
        args.method,
        args.divergence,
        args.seed,
        args.optimum,
        args.out_dir,
        progress=not args.no_progress,
    )
    if metrics.get("status") == "failed":
        print(
            f"{args.method} {args.divergence} seed {args.seed}: FAILED ({metrics['error']}) -> {args.out_dir}"
        )
        return 0 if args.allow_failure else 1
    print(
        f"{args.method} {args.divergence} seed {args.seed}: mu = {metrics['mu']:.4f} "
        f"({metrics['mu_error']:+.4f}), sigma = {metrics['sigma']:.4f} ({metrics['sigma_error']:+.4f}), "
        f"{metrics['wall_seconds']:.1f} s -> {args.out_dir}"
    )
    return 0


def convergence_command(args: argparse.Namespace) -> int:
    from febm.config import load_config
    from febm.toy.convergence import run_convergence
    from febm.toy.runs import load_optimum

    finals = run_convergence(
        load_config(args.config), args.divergence, load_optimum(args.optimum, args.divergence), args.out
    )
    for final in finals:
        print(
            f"init {final['init']}: ({final['mu0']:.2f}, {final['sigma0']:.2f}) -> ({final['mu']:.4f}, "
            f"{final['sigma']:.4f}), error ({final['mu_error']:+.4f}, {final['sigma_error']:+.4f})"
        )
    print(f"-> {args.out}")
    return 0


def stability_command(args: argparse.Namespace) -> int:
    from febm.config import load_config
    from febm.toy.runs import run_stability

    result = run_stability(load_config(args.config), args.divergence, args.optimum, args.run_dirs, args.out)
    print(result["statement"])
    print(f"-> {args.out}")
    return 0


def table_command(args: argparse.Namespace) -> int:
    from febm.config import load_config
    from febm.results_schema import write_results
    from febm.toy.table import build_table5

    config = load_config(args.config)
    rows = build_table5(args.optima, args.runs, args.paper, config)
    write_results(rows, args.out)
    print(f"Table 5: {len(rows)} rows -> {args.out}")
    return 0


def check_command(args: argparse.Namespace) -> int:
    from febm.io import write_json_atomic
    from febm.toy.failures import check_runs

    checked = check_runs(args.runs)  # raises ToyRunsFailedError (exit 2, one line) naming the failures
    write_json_atomic(args.out, {"runs_checked": checked, "failed": 0})
    print(f"toy-check: all {checked} runs completed -> {args.out}")
    return 0


def figure_command(args: argparse.Namespace) -> int:
    from febm.config import load_config
    from febm.toy.figures import make_figure

    written = make_figure(
        args.figure, load_config(args.config), args.optima, args.runs, args.out, args.convergence
    )
    print(" ".join(str(p) for p in written))
    return 0


def study_command(args: argparse.Namespace) -> int:
    from febm.toy.settings import config_for_preset
    from febm.toy.study import run_study

    config = config_for_preset(args.preset, args.config)
    summary = run_study(config, args.out, jobs=args.jobs)
    print(json.dumps(summary["paths"], indent=2))
    print(f"1-D study finished in {summary['wall_seconds']:.0f} s", file=sys.stderr)
    if summary["failures"]:  # every file is written; the exit status still says something failed
        print(f"febm toy-study: error: {summary['failures']}", file=sys.stderr)
        return 1
    return 0
