"""Table 5 (Appendix F.1): learned (mu, sigma) per divergence, the exact optimum and the paper's numbers."""

from __future__ import annotations

import csv
import io
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

from febm.io import write_text_atomic
from febm.toy.runs import ToyInputError, load_optimum, load_run

TABLE5_COLUMNS = (
    "divergence",
    "mu_optimal",
    "sigma_optimal",
    "divergence_value",
    "mu_febm",
    "mu_febm_std",
    "sigma_febm",
    "sigma_febm_std",
    "n_seeds",
    "mu_paper_optimal",
    "sigma_paper_optimal",
    "mu_paper_febm",
    "sigma_paper_febm",
)
# Baselines get their own rows, named as in the paper's tables; both minimise KL.
BASELINE_ROWS = {"cd": "contrastive_divergence", "mle": "maximum_likelihood"}
PAPER_METHOD = {"febm": "f-EBM", "cd": "contrastive_divergence"}


def read_paper_table5(path: str | Path) -> dict[tuple[str, str, str], float]:
    """{(method, divergence, metric): value} for the table5 rows of reported_results.csv."""
    try:
        with open(path, newline="") as handle:
            rows = list(csv.DictReader(handle))
    except FileNotFoundError:
        raise ToyInputError(
            f"paper results {str(path)!r} do not exist; pass febm/data/reported_results.csv"
        ) from None
    return {
        (row["method"], row["divergence"], row["metric"]): float(row["value"])
        for row in rows
        if row.get("table") == "table5" and row.get("value")
    }


def _std(values: list[float]) -> float | None:
    return statistics.stdev(values) if len(values) > 1 else None


def build_table5(
    optimum_paths: list[str | Path], run_dirs: list[str | Path], paper_path: str | Path
) -> list[dict[str, Any]]:
    optima = {}
    for path in optimum_paths:
        optimum = load_optimum(path)
        optima[optimum["divergence"]] = optimum
    runs: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for run_dir in run_dirs:
        metrics = load_run(run_dir)
        runs[(metrics["method"], metrics["divergence"])].append(metrics)
    paper = read_paper_table5(paper_path)
    order = [d for d in optima if ("febm", d) in runs] + [
        d for d in sorted({d for (m, d) in runs if m == "febm"}) if d not in optima
    ]
    rows = []
    keys = [("febm", d) for d in order] + [(m, "kl") for m in BASELINE_ROWS if (m, "kl") in runs]
    for method, divergence in keys:
        if divergence not in optima:
            raise ToyInputError(
                f"no optimum file for {divergence!r} among --optima; add results/toy/optimum/{divergence}.json"
            )
        optimum, seeds = optima[divergence], runs[(method, divergence)]
        mus, sigmas = [r["mu"] for r in seeds], [r["sigma"] for r in seeds]
        paper_method = PAPER_METHOD.get(method)
        rows.append(
            {
                "divergence": BASELINE_ROWS.get(method, divergence),
                "mu_optimal": optimum["mu"],
                "sigma_optimal": optimum["sigma"],
                "divergence_value": optimum["divergence_value"],
                "mu_febm": statistics.fmean(mus),
                "mu_febm_std": _std(mus),
                "sigma_febm": statistics.fmean(sigmas),
                "sigma_febm_std": _std(sigmas),
                "n_seeds": len(seeds),
                "mu_paper_optimal": paper.get(("optimum", divergence, "mu")),
                "sigma_paper_optimal": paper.get(("optimum", divergence, "sigma")),
                "mu_paper_febm": paper.get((paper_method, divergence, "mu")) if paper_method else None,
                "sigma_paper_febm": paper.get((paper_method, divergence, "sigma")) if paper_method else None,
            }
        )
    return rows


def write_table5(rows: list[dict[str, Any]], out: str | Path) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=TABLE5_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _format(row[k]) for k in TABLE5_COLUMNS})
    write_text_atomic(out, buffer.getvalue())


def _format(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6f}"
    return value
