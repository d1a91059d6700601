"""Speed, memory and accuracy of the 1-D study; prints one JSON object.

    .venv/bin/python benchmarks/toy_speed.py                  # everything (~10 minutes on 2 cores)
    .venv/bin/python benchmarks/toy_speed.py --skip-study     # only the per-iteration / original-recipe timings
    .venv/bin/python benchmarks/toy_speed.py --full-original  # also run the original recipe's 30,000 steps (its error)

What is measured:

* ``study_wall_seconds``: `febm toy-study` with the schema defaults (9 divergences, f-EBM + CD + MLE, 5 seeds,
  convergence trajectories, Theorem 5, Table 5, Figures 1-4) on ``--jobs`` worker processes.
* ``accuracy``: per divergence, the seed-mean error of (mu, sigma) against the exact optimum and the seed std.
* ``time_to_accuracy_speedup``: the original recipe's time for its 30,000 SGD steps (lr 1e-3, batch 1000,
  plain autograd loop; per-step time measured here x 30,000) divided by
  the wall time of one complete f-EBM run (seed 0, default settings, this process alone, one thread) whose own
  result is within 0.01 of the optimum (a complete run, not the step at which it first got there). The two are
  timed back to back for each divergence, so a change in the machine's load hits both; the smallest ratio
  over the nine divergences is reported.
* ``iteration_speedup``: seconds per iteration of the plain autograd loop over the fast engine, identical work
  (same losses, batch, network, alternating updates, optimiser), interleaved repeats, median.
* ``peak_rss_mb``: the largest resident set of any training run (each run records its own peak; the target is
  per run). ``peak_rss_mb_study_workers`` (largest pool worker, which runs many stages in turn) and
  ``peak_rss_mb_benchmark_process`` (this process: both engines, nine single runs, the Langevin check) are
  reported beside it.
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import shutil
import statistics
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from febm.config import validate  # noqa: E402
from febm.divergences import get_divergence  # noqa: E402
from febm.objectives import energy_loss, variational_loss  # noqa: E402
from febm.quadrature import GaussianMixture  # noqa: E402
from febm.toy.optimum import find_optimum  # noqa: E402
from febm.toy.settings import TrainSettings, mixture_from_config  # noqa: E402
from febm.toy.train import ToyTrainer, energy  # noqa: E402

ORIGINAL_STEPS = 30_000


def original_recipe(mixture: GaussianMixture, divergence: str, steps: int, seed: int = 0) -> dict:
    """The original toy script's loop: SGD lr 1e-3 on H (1-64-64-1 tanh) and on (mu, sigma) from (0, 1),
    1000 + 1000 samples, H step then E step with H recomputed, plain autograd, one thread."""
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    div = get_divergence(divergence)
    h_net = torch.nn.Sequential(
        torch.nn.Linear(1, 64),
        torch.nn.Tanh(),
        torch.nn.Linear(64, 64),
        torch.nn.Tanh(),
        torch.nn.Linear(64, 1),
    )
    theta = torch.tensor([0.0, 1.0], requires_grad=True)
    opt_h = torch.optim.SGD(h_net.parameters(), lr=1e-3)
    opt_e = torch.optim.SGD([theta], lr=1e-3)
    start = time.perf_counter()
    for _ in range(steps):
        x_pos = mixture.sample(1000, generator)[:, None]
        with torch.no_grad():
            x_neg = theta[0] + theta[1] * torch.randn(1000, 1, generator=generator)
        e_pos, e_neg = energy(x_pos, theta[0], theta[1]), energy(x_neg, theta[0], theta[1])
        loss_h = variational_loss(div, h_net(x_pos), e_pos, h_net(x_neg), e_neg).total
        opt_h.zero_grad()
        loss_h.backward()
        opt_h.step()
        e_pos, e_neg = energy(x_pos, theta[0], theta[1]), energy(x_neg, theta[0], theta[1])
        with torch.no_grad():
            h_pos, h_neg = h_net(x_pos), h_net(x_neg)
        loss_e = energy_loss(div, e_pos, h_pos, e_neg, h_neg).total
        opt_e.zero_grad()
        loss_e.backward()
        opt_e.step()
    wall = time.perf_counter() - start
    return {"steps": steps, "wall_seconds": wall, "mu": float(theta[0]), "sigma": float(theta[1])}


def iteration_times(config: dict, divergence: str, steps: int, repeats: int) -> dict:
    """Seconds per iteration of the two engines on identical work (interleaved, median of repeats)."""
    mixture = mixture_from_config(config)
    times: dict[str, list[float]] = {"fast": [], "autograd": []}
    trainers = {
        engine: ToyTrainer(
            "febm",
            divergence,
            mixture,
            TrainSettings.from_config(config, engine=engine, iterations=10**6, h_warmup_iterations=0),
            seed=0,
        )
        for engine in times
    }
    for trainer in trainers.values():  # warm up allocations and the first-call paths
        for _ in range(50):
            trainer.train_step()
    for _ in range(repeats):
        for engine, trainer in trainers.items():
            start = time.perf_counter()
            for _ in range(steps):
                trainer.train_step()
            times[engine].append((time.perf_counter() - start) / steps)
    fast, plain = statistics.median(times["fast"]), statistics.median(times["autograd"])
    return {
        "fast_seconds_per_iteration": fast,
        "autograd_seconds_per_iteration": plain,
        "iteration_speedup": plain / fast,
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--out", default=str(REPO / "benchmarks" / "out" / "toy_study"), help="study results folder"
    )
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--skip-study", action="store_true")
    parser.add_argument("--full-original", action="store_true", help="run the original recipe's 30,000 steps")
    parser.add_argument(
        "--original-steps",
        type=int,
        default=1000,
        help="steps of the original recipe timed before each divergence's run",
    )
    args = parser.parse_args()
    study_dir = Path(args.out).resolve() / "toy"
    if study_dir.exists() and (REPO / "benchmarks" / "out") not in study_dir.parents:
        raise SystemExit(f"{study_dir} exists and is not under benchmarks/out; pass a fresh --out")
    torch.set_num_threads(1)
    config = validate({"preset": "paper"})
    mixture = mixture_from_config(config)
    result: dict = {"threads_per_process": 1, "jobs": args.jobs, "machine_note": "2 shared CPU cores; noisy"}

    speed = iteration_times(config, "jensen_shannon", steps=300, repeats=5)
    result.update(speed)

    steps = args.original_steps
    single = single_runs(config, steps)
    result["single_run"] = single
    per_step = statistics.median(v["original_seconds_per_step"] for v in single.values())
    result["original_recipe"] = {
        "divergence": "jensen_shannon",
        "steps_timed_per_divergence": steps,
        "seconds_per_step_median": per_step,
        "seconds_for_30000_steps_median": per_step * ORIGINAL_STEPS,
    }
    if args.full_original:
        optimum = find_optimum("jensen_shannon", mixture)
        original = original_recipe(mixture, "jensen_shannon", ORIGINAL_STEPS)
        result["original_recipe"].update(
            mu_error=original["mu"] - optimum.mu, sigma_error=original["sigma"] - optimum.sigma
        )
    reached = [v for v in single.values() if v["within_0.01"]]
    result["time_to_accuracy_speedup"] = min(v["speedup"] for v in reached) if reached else None

    if not args.skip_study:
        from febm.toy.study import run_study

        # A study folder from an earlier run with the same settings would be resumed from its finished
        # checkpoints and time nothing.
        shutil.rmtree(study_dir, ignore_errors=True)
        start = time.perf_counter()
        summary = run_study(config, args.out, jobs=args.jobs)
        result["study_wall_seconds"] = time.perf_counter() - start
        runs_root = Path(args.out) / "toy" / "runs"
        accuracy = {}
        for method_dir in sorted(runs_root.iterdir()):
            for divergence_dir in sorted(method_dir.iterdir()):
                metrics = [
                    json.loads((d / "metrics.json").read_text()) for d in sorted(divergence_dir.iterdir())
                ]
                mus, sigmas = [m["mu"] for m in metrics], [m["sigma"] for m in metrics]
                key = f"{method_dir.name}/{divergence_dir.name}"
                accuracy[key] = {
                    "mu_error": statistics.fmean(mus) - metrics[0]["mu_optimal"],
                    "sigma_error": statistics.fmean(sigmas) - metrics[0]["sigma_optimal"],
                    "mu_std": statistics.stdev(mus) if len(mus) > 1 else None,
                    "sigma_std": statistics.stdev(sigmas) if len(sigmas) > 1 else None,
                    "n_seeds": len(metrics),
                }
                accuracy[key]["within_0.01"] = (
                    abs(accuracy[key]["mu_error"]) <= 0.01 and abs(accuracy[key]["sigma_error"]) <= 0.01
                )
        result["accuracy"] = accuracy
        result["all_febm_within_0.01"] = all(
            v["within_0.01"] for k, v in accuracy.items() if k.startswith("febm/")
        )
        result["peak_rss_mb_runs"] = summary["peak_rss_mb_runs"]
        result["study_summary"] = str(Path(args.out) / "toy" / "study_summary.json")
    # The target is per run; the study's workers and this process also hold torch (~500 MB on import here)
    # and the allocator's high-water mark of every stage they ran, so they are reported beside it.
    result["peak_rss_mb_study_workers"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    result["peak_rss_mb_benchmark_process"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result["peak_rss_mb"] = result.get("peak_rss_mb_runs")
    result["langevin_check"] = langevin_check(config)
    print(json.dumps(_finite(result), indent=2))
    out = REPO / "benchmarks" / "out" / "toy_speed.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(_finite(result), indent=2) + "\n")
    return 0


def single_runs(config: dict, original_steps: int) -> dict:
    """One complete f-EBM run per divergence (seed 0, default settings), timed alone in this process, each
    right after timing ``original_steps`` of the original recipe (on JS, as the paper's toy script)."""
    mixture = mixture_from_config(config)
    settings = TrainSettings.from_config(config)
    out = {}
    for divergence in config["toy"]["divergences"]:
        optimum = find_optimum(divergence, mixture)
        original = original_recipe(mixture, "jensen_shannon", original_steps)
        original_per_step = original["wall_seconds"] / original_steps
        start = time.perf_counter()
        run = ToyTrainer("febm", divergence, mixture, settings, seed=0).run()
        wall = time.perf_counter() - start
        mu_error, sigma_error = run.mu - optimum.mu, run.sigma - optimum.sigma
        out[divergence] = {
            "wall_seconds": wall,
            "iterations": run.iterations,
            "mu_error": mu_error,
            "sigma_error": sigma_error,
            "within_0.01": abs(mu_error) <= 0.01 and abs(sigma_error) <= 0.01,
            "original_seconds_per_step": original_per_step,
            "speedup": original_per_step * ORIGINAL_STEPS / wall,
        }
    return out


def langevin_check(config: dict) -> dict:
    """One f-EBM run per divergence below with model samples from persistent Langevin chains (Eq. 5)."""
    mixture = mixture_from_config(config)
    out = {}
    for divergence in ("kl", "jensen_shannon"):
        optimum = find_optimum(divergence, mixture)
        settings = TrainSettings.from_config(config, sampler="langevin")
        start = time.perf_counter()
        run = ToyTrainer("febm", divergence, mixture, settings, seed=0).run()
        out[divergence] = {
            "mu_error": run.mu - optimum.mu,
            "sigma_error": run.sigma - optimum.sigma,
            "wall_seconds": time.perf_counter() - start,
        }
    return out


def _finite(value):
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


if __name__ == "__main__":
    raise SystemExit(main())
