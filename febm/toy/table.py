"""Table 5 (Appendix F.1): learned (mu, sigma) per divergence, the exact optimum and the paper's numbers,
in the results schema (febm.results_schema, one line per method, divergence and metric).

Beside the global optimum (method ``optimum``), each divergence has the stationary point that gradient
descent on the exact objective reaches from the runs' start (method ``stationary``, febm.toy.stationary;
``same_as_optimum`` says whether the two coincide): the honest target of a local method where the
divergence has several minima. On the learned rows ``ended_near`` says which of the two each converged run
ended closer to (``optimum=stationary`` when they coincide) and ``distance_max`` the largest such distance,
max(|mu - mu'|, |sigma - sigma'|); ``per_seed`` spells it out per seed. Failed runs (febm.toy.failures) are
not averaged: ``n`` counts the converged runs of ``n_runs``, ``failures`` holds their messages.
"""

from __future__ import annotations

import csv
import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from febm.results_schema import ResultRow, canonical_method, make_row
from febm.toy.failures import is_failed
from febm.toy.runs import ToyInputError, load_optimum, load_run
from febm.toy.settings import mixture_from_config
from febm.toy.stationary import StationaryPoint, descend_from, same_point, stationary_target

TABLE, DATASET = "table5", "toy_mixture"  # as the paper's rows in reported_results.csv
METRICS = ("mu", "sigma")
# The baselines (CD, maximum likelihood) get their own rows under KL, the divergence both minimise.
BASELINE_ROWS = ("cd", "mle")
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
) -> list[ResultRow]:
    """Table 5 in the results schema (febm.results_schema): per f-EBM divergence its exact optimum, the
    stationary point descent reaches from the runs' start (with ``config``) and the learned (mu, sigma);
    then the baselines. Failed runs are counted, not averaged (``n`` converged of ``n_runs``)."""
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
    rows: list[ResultRow] = []
    for method, divergence in keys:
        optimum = optima[divergence]
        seeds = sorted(runs[(method, divergence)], key=lambda r: r.get("seed", 0))
        point = stationary.get(divergence if method == "febm" else "baseline:kl")
        group = _Group(divergence, optimum, point, scale, paper, _provenance(seeds))
        if method == "febm":
            rows += _target_rows(group)
        rows += _learned_rows(method, seeds, group)
    return rows


@dataclass(frozen=True)
class _Group:
    """What the lines of one divergence (or baseline) are built from."""

    divergence: str
    optimum: dict[str, Any]
    point: StationaryPoint | None  # where descent on the exact objective goes from the runs' start
    scale: float  # the mixture's standard deviation
    paper: dict[tuple[str, str, str], float]
    provenance: dict[str, Any]


def _provenance(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The preset and scale the runs record (one value, or every distinct one joined by ';')."""
    return {
        name: ";".join(dict.fromkeys(str(r[name]) for r in runs if r.get(name) is not None))
        for name in ("preset", "scale")
    }


def _target_rows(group: _Group) -> list[ResultRow]:
    """The exact optimum (with the paper's) and, where computed, the stationary point of descent."""
    rows = [
        make_row(
            TABLE,
            DATASET,
            "optimum",
            group.divergence,
            metric,
            mean=group.optimum[metric],
            source="exact optimum (quadrature)",
            objective_value=group.optimum["divergence_value"],
            paper=group.paper.get(("optimum", group.divergence, metric)),
            paper_source="paper Table 5" if ("optimum", group.divergence, metric) in group.paper else None,
            **group.provenance,
        )
        for metric in METRICS
    ]
    if group.point is not None and group.point.mu is not None:
        same = same_point(
            (group.point.mu, group.point.sigma), (group.optimum["mu"], group.optimum["sigma"]), group.scale
        )
        rows += [
            make_row(
                TABLE,
                DATASET,
                "stationary",
                group.divergence,
                metric,
                mean=getattr(group.point, metric),
                source="gradient descent on the exact objective from the start",
                same_as_optimum=same,
                **group.provenance,
            )
            for metric in METRICS
        ]
    return rows


def _learned_rows(method: str, seeds: list[dict[str, Any]], group: _Group) -> list[ResultRow]:
    """The learned (mu, sigma) of ``method``'s runs: mean over the converged seeds, and where each ended."""
    converged = [r for r in seeds if not is_failed(r)]
    near = [nearest_point(r, group.optimum, group.point, group.scale) for r in converged]
    per_seed = {
        r.get("seed"): f"{label}:{distance:.6f}" for r, (label, distance) in zip(converged, near, strict=True)
    }
    per_seed.update({r.get("seed"): "failed" for r in seeds if is_failed(r)})
    paper_method = PAPER_METHOD.get(method)
    facts = {
        "converged": f"{len(converged)}/{len(seeds)}",
        "ended_near": _ended_near([label for label, _ in near]) if near else None,
        "distance_max": max((distance for _, distance in near), default=None),
        "per_seed": " ".join(f"seed{seed}={text}" for seed, text in sorted(per_seed.items())),
        "failures": "; ".join(f"seed{r.get('seed')}: {r.get('error', '')}" for r in seeds if is_failed(r))
        or None,
        "iterations": " ".join(dict.fromkeys(str(r["iterations"]) for r in seeds if r.get("iterations"))),
    }
    rows = []
    for metric in METRICS:
        values = [r[metric] for r in converged]
        paper_key = (paper_method, group.divergence, metric)
        rows.append(
            make_row(
                TABLE,
                DATASET,
                canonical_method(method),
                group.divergence,
                metric,
                mean=statistics.fmean(values) if values else None,
                std=_std(values),
                n=len(converged),
                n_runs=len(seeds),
                seeds=" ".join(str(r.get("seed")) for r in seeds),
                source="this reproduction",
                paper=group.paper.get(paper_key),
                paper_source="paper Table 5" if paper_key in group.paper else None,
                **facts,
                **group.provenance,
            )
        )
    return rows
