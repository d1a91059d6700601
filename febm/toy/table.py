"""Table 5 (Appendix F.1): learned (mu, sigma) per divergence, the exact optimum and the paper's numbers.

Beside the global optimum, each row holds the stationary point that gradient descent on the exact objective
reaches from the runs' start (``mu_stationary``, ``sigma_stationary``; febm.toy.stationary): the honest target
of a local method where the divergence has several minima. ``ended_near`` says which of the two each
converged run ended closer to (``optimum=stationary`` when they coincide) and ``distance_max`` the largest
such distance, max(|mu - mu'|, |sigma - sigma'|); ``per_seed`` spells it out per seed. Failed runs
(febm.toy.failures) are not averaged: ``converged`` is n converged / n seeds, ``failures`` their messages.
"""

from __future__ import annotations

import csv
import io
import statistics
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from febm.io import write_text_atomic
from febm.toy.failures import is_failed
from febm.toy.runs import ToyInputError, load_optimum, load_run
from febm.toy.settings import mixture_from_config
from febm.toy.stationary import StationaryPoint, descend_from, same_point, stationary_target

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
    "mu_stationary",
    "sigma_stationary",
    "stationary_is_optimum",
    "n_converged",
    "converged",
    "ended_near",
    "distance_max",
    "per_seed",
    "failures",
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


def _distance(run: dict[str, Any], mu: float, sigma: float) -> float:
    """How far a run ended from a point: the larger of |mu - mu'| and |sigma - sigma'| (Table 5's criterion)."""
    return max(abs(run["mu"] - mu), abs(run["sigma"] - sigma))


def nearest_point(
    run: dict[str, Any], optimum: dict[str, Any], stationary: StationaryPoint | None, scale: float
) -> tuple[str, float]:
    """(which point the run ended near, its distance): "optimum", "stationary", or "optimum=stationary"
    when descent from the start reaches the global optimum itself."""
    to_optimum = _distance(run, optimum["mu"], optimum["sigma"])
    if stationary is None or stationary.mu is None:
        return "optimum", to_optimum
    if same_point((stationary.mu, stationary.sigma), (optimum["mu"], optimum["sigma"]), scale):
        return "optimum=stationary", to_optimum
    to_stationary = _distance(run, stationary.mu, stationary.sigma)
    return ("stationary", to_stationary) if to_stationary < to_optimum else ("optimum", to_optimum)


def stationary_points(config: dict[str, Any], divergences: list[str]) -> dict[str, StationaryPoint]:
    """Per divergence, the point gradient descent on the exact D_f reaches from toy.train's start."""
    mixture = mixture_from_config(config)
    return {d: stationary_target(d, mixture, config["toy"]["train"]) for d in divergences}


def _ended_near(labels: list[str]) -> str:
    counts = Counter(labels)
    if len(counts) == 1:
        return labels[0]
    return ",".join(f"{label}:{count}" for label, count in sorted(counts.items()))


def build_table5(
    optimum_paths: list[str | Path],
    run_dirs: list[str | Path],
    paper_path: str | Path,
    config: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """One row per divergence (and baseline). Failed runs are counted, not averaged (n_converged / n_seeds).

    With ``config``, each row also holds the stationary point descent reaches from the runs' start
    (febm.toy.stationary) and, per run, the point it ended near with the distance.
    """
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
    for _, divergence in keys:
        if divergence not in optima:
            raise ToyInputError(
                f"no optimum file for {divergence!r} among --optima; add results/toy/optimum/{divergence}.json"
            )
    stationary: dict[str, StationaryPoint] = {}
    scale = 1.0
    if config is not None:
        stationary = stationary_points(config, order)
        if any(m in BASELINE_ROWS for m, _ in keys):  # the baselines minimise plain KL (no ratio cap)
            train = config["toy"]["train"]
            stationary["baseline:kl"] = descend_from(
                "kl", mixture_from_config(config), (float(train["init_mu"]), float(train["init_sigma"]))
            )
        scale = mixture_from_config(config).std
    for method, divergence in keys:
        optimum = optima[divergence]
        seeds = sorted(runs[(method, divergence)], key=lambda r: r.get("seed", 0))
        converged = [r for r in seeds if not is_failed(r)]
        mus, sigmas = [r["mu"] for r in converged], [r["sigma"] for r in converged]
        point = stationary.get(divergence if method == "febm" else "baseline:kl")
        near = [nearest_point(r, optimum, point, scale) for r in converged]
        per_seed = {
            r.get("seed"): f"{label}:{distance:.6f}"
            for r, (label, distance) in zip(converged, near, strict=True)
        }
        per_seed.update({r.get("seed"): "failed" for r in seeds if is_failed(r)})
        has_point = point is not None and point.mu is not None
        paper_method = PAPER_METHOD.get(method)
        rows.append(
            {
                "divergence": BASELINE_ROWS.get(method, divergence),
                "mu_optimal": optimum["mu"],
                "sigma_optimal": optimum["sigma"],
                "divergence_value": optimum["divergence_value"],
                "mu_febm": statistics.fmean(mus) if mus else None,
                "mu_febm_std": _std(mus),
                "sigma_febm": statistics.fmean(sigmas) if sigmas else None,
                "sigma_febm_std": _std(sigmas),
                "n_seeds": len(seeds),
                "mu_stationary": point.mu if has_point else None,
                "sigma_stationary": point.sigma if has_point else None,
                "stationary_is_optimum": None
                if not has_point
                else str(
                    same_point((point.mu, point.sigma), (optimum["mu"], optimum["sigma"]), scale)
                ).lower(),
                "n_converged": len(converged),
                "converged": f"{len(converged)}/{len(seeds)}",
                "ended_near": _ended_near([label for label, _ in near]) if near else None,
                "distance_max": max((distance for _, distance in near), default=None),
                "per_seed": " ".join(f"seed{seed}={text}" for seed, text in sorted(per_seed.items())),
                "failures": "; ".join(
                    f"seed{r.get('seed')}: {r.get('error', '')}" for r in seeds if is_failed(r)
                )
                or None,
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
