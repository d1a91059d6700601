"""``febm report``: render the HTML report from the workflow's tables, figures, metrics and benchmarks."""

from __future__ import annotations

import argparse
from pathlib import Path

PAPER_RESULTS = Path(__file__).resolve().parents[1] / "data" / "reported_results.csv"


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "report",
        help="render results/report/index.html from tables, figures, metrics and benchmark files",
        description=(
            "Render the HTML report. Every list may be empty: a study without results shows as "
            "'not run'. Example: febm report --config results/config/resolved.yaml --templates report "
            "--tables results/tables/*.csv --figures results/figures/figure*.png "
            "--curves results/figures/*_curve.png --benchmarks results/benchmarks/*/*.tsv "
            "--out results/report/index.html"
        ),
    )
    parser.add_argument(
        "--config", nargs="+", required=True, type=Path, help="config YAML file(s), merged in order"
    )
    parser.add_argument("--templates", type=Path, default=Path("report"), help="folder with index.html.j2")
    parser.add_argument("--paper", type=Path, default=PAPER_RESULTS, help="the paper's numbers (CSV)")
    parser.add_argument("--out", type=Path, required=True, help="the HTML file to write")
    for name, what in [
        ("tables", "table CSVs (table5.csv, table1.csv, table2.csv, fashion_mnist.csv)"),
        ("figures", "figure PNGs (figure1.png ... figure4.png)"),
        ("metrics", "per-run metrics/score JSONs (for scale labels and hardware)"),
        ("samples", "sample-grid PNGs of the image runs"),
        ("stability", "toy-stability JSONs"),
        ("gpu-check", "the GPU check JSON of the image study"),
        ("benchmarks", "Snakemake benchmark TSVs (results/benchmarks/<stage>/<job>.tsv)"),
        ("curves", "quality-vs-iteration figures of `febm classifier-curve` (<dataset>_curve.png)"),
    ]:
        metavar = "PNG" if name == "curves" else "FILE"
        parser.add_argument(f"--{name}", nargs="*", type=Path, default=[], metavar=metavar, help=what)
    parser.set_defaults(handler=run_report)


def run_report(args: argparse.Namespace) -> int:
    from febm.config import load_config
    from febm.reporting.render import ReportInputs, render_report

    inputs = ReportInputs(
        config=load_config(args.config),
        templates=args.templates,
        paper=args.paper,
        out=args.out,
        tables=args.tables,
        figures=args.figures,
        metrics=args.metrics,
        samples=args.samples,
        stability=args.stability,
        gpu_check=args.gpu_check,
        benchmarks=args.benchmarks,
        curves=args.curves,
    )
    path = render_report(inputs)
    print(f"report written to {path}")
    return 0
