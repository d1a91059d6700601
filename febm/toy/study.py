"""`febm toy-study`: every stage of the 1-D study in one process pool, writing the workflow's file layout.

The stages are the same functions the single-stage commands call, so the files are the ones
`snakemake` would produce from the same config.
"""

from __future__ import annotations

import multiprocessing
import os
import statistics
import sys
import time
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from typing import Any

import yaml

from febm.io import write_json_atomic, write_text_atomic
from febm.runspec import BASELINE_DIVERGENCE, TOY_BASELINES, toy_optimum_divergences, toy_runs
from febm.toy.failures import failure_summary, is_failed

PAPER_RESULTS = Path(__file__).resolve().parent.parent / "data" / "reported_results.csv"


class InlineExecutor:
    """jobs = 1: run every stage in this process (same interface as ProcessPoolExecutor)."""

    def __enter__(self) -> InlineExecutor:
        return self

    def __exit__(self, *exc) -> None:
        return None

    def submit(self, function, *args) -> Future:
        future: Future = Future()
        try:
            future.set_result(function(*args))
        except BaseException as error:  # delivered by .result(), as a pool would
            future.set_exception(error)
        return future


def _optimum(config, divergence, out):
    from febm.toy.runs import run_optimum

    return run_optimum(config, divergence, out)


def _train(config, method, divergence, seed, optimum, out_dir):
    from febm.toy.runs import run_training

    return run_training(config, method, divergence, seed, optimum, out_dir, progress=False)


def _convergence(config, divergence, optimum_path, out):
    from febm.toy.convergence import run_convergence
    from febm.toy.runs import load_optimum

    return run_convergence(config, divergence, load_optimum(optimum_path, divergence), out)


def _stability(config, divergence, optimum, run_dirs, out):
    from febm.toy.runs import run_stability

    return run_stability(config, divergence, optimum, run_dirs, out)


def _figure(number, config, optima, run_dirs, out, convergence):
    from febm.toy.figures import make_figure

    return make_figure(number, config, optima, run_dirs, out, convergence)


def run_study(config: dict[str, Any], out: str | Path, jobs: int | None = None) -> dict[str, Any]:
    """Run the whole study; returns the produced paths and a short accuracy summary."""
    from febm.results_schema import write_results
    from febm.toy.runs import peak_rss_mb
    from febm.toy.table import build_table5

    start = time.perf_counter()
    out = Path(out)
    toy = config["toy"]
    divergences, seeds = list(toy["divergences"]), list(toy["seeds"])
    optimum_divergences = toy_optimum_divergences(config)
    optimum_path = {d: out / "toy" / "optimum" / f"{d}.json" for d in optimum_divergences}
    specs = toy_runs(config)
    runs = [(spec.method, spec.divergence, spec.seed) for spec in specs]
    run_dir = {(spec.method, spec.divergence, spec.seed): out / spec.run_dir for spec in specs}
    convergence_path = {d: out / "toy" / "convergence" / f"{d}.csv" for d in divergences}
    stability_path = {d: out / "toy" / "stability" / f"{d}.json" for d in divergences}
    table_path = out / "tables" / "table5.csv"
    figure_paths = {n: out / "figures" / f"figure{n}.png" for n in (1, 2, 3, 4)}
    write_text_atomic(out / "toy" / "config.yaml", yaml.safe_dump(config, sort_keys=True))

    jobs = jobs or os.cpu_count() or 1
    executor = (
        InlineExecutor()
        if jobs == 1
        else ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn"))
    )
    with executor as pool:
        _wait([pool.submit(_optimum, config, d, optimum_path[d]) for d in optimum_divergences], "optima")
        # Longest tasks first keeps both workers busy to the end.
        pending: dict[Any, Future] = {}
        for d in divergences:
            pending[("convergence", d)] = pool.submit(
                _convergence, config, d, optimum_path[d], convergence_path[d]
            )
        for key in runs:
            method, d, s = key
            pending[key] = pool.submit(_train, config, method, d, s, optimum_path[d], run_dir[key])
        stability_jobs = []
        for d in divergences:
            _wait([pending[("febm", d, s)] for s in seeds], f"f-EBM runs on {d}")
            dirs = [run_dir[("febm", d, s)] for s in seeds]
            stability_jobs.append(
                pool.submit(_stability, config, d, optimum_path[d], dirs, stability_path[d])
            )
        metrics = {key: pending[key].result() for key in runs}
        _wait([pending[("convergence", d)] for d in divergences], "convergence")
        optima_list = [optimum_path[d] for d in optimum_divergences]
        dirs = [run_dir[key] for key in runs]
        figures = [
            pool.submit(
                _figure,
                n,
                config,
                optima_list,
                dirs,
                figure_paths[n],
                list(convergence_path.values()) if n == 4 else None,
            )
            for n in (1, 2, 3, 4)
        ]
        write_results(build_table5(optima_list, dirs, PAPER_RESULTS, config), table_path)
        _wait(figures + stability_jobs, "figures and stability")
    wall = time.perf_counter() - start
    summary = _summary(metrics, divergences, seeds)
    paths = {
        "table5": str(table_path),
        "figures": [
            str(p) for n in (1, 2, 3, 4) for p in (figure_paths[n], figure_paths[n].with_suffix(".pdf"))
        ],
        "optima": [str(p) for p in optimum_path.values()],
        "runs": str(out / "toy" / "runs"),
        "convergence": [str(p) for p in convergence_path.values()],
        "stability": [str(p) for p in stability_path.values()],
    }
    result = {
        "wall_seconds": wall,
        "jobs": jobs,
        "paths": paths,
        "accuracy": summary,
        # None, or one line naming every failed run (the table counts them; toy-study then exits 1)
        "failures": failure_summary(metrics.values()),
        "peak_rss_mb_main": peak_rss_mb(),
        "peak_rss_mb_runs": max(m["peak_rss_mb"] for m in metrics.values()),
    }
    write_json_atomic(out / "toy" / "study_summary.json", result)
    return result


def _wait(futures: list[Future], what: str) -> None:
    for future in futures:
        future.result()  # re-raises a worker's error here
    print(f"toy-study: {what} done", file=sys.stderr)


def _summary(metrics: dict, divergences: list[str], seeds: list[int]) -> dict[str, Any]:
    out = {}
    for method, names in (("febm", divergences), *((b, [BASELINE_DIVERGENCE]) for b in TOY_BASELINES)):
        for d in names:
            runs = [metrics[(method, d, s)] for s in seeds]
            converged = [r for r in runs if not is_failed(r)]
            if not converged:
                out[f"{method}/{d}"] = {"n_converged": 0, "n_seeds": len(runs), "within_0.01": False}
                continue
            mu_error = statistics.fmean(r["mu"] for r in converged) - converged[0]["mu_optimal"]
            sigma_error = statistics.fmean(r["sigma"] for r in converged) - converged[0]["sigma_optimal"]
            out[f"{method}/{d}"] = {
                "mean_mu_error": mu_error,
                "mean_sigma_error": sigma_error,
                "within_0.01": abs(mu_error) <= 0.01 and abs(sigma_error) <= 0.01,
                "n_converged": len(converged),
                "n_seeds": len(runs),
            }
    return out
