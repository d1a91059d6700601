"""The stages of the 1-D study as functions with explicit inputs and outputs (the CLI calls these).

Every file is written atomically (febm.io). A training run writes into its output folder:
``metrics.json``, ``trajectory.csv``, ``h.pt`` (H's state dict, loadable with ``weights_only=True``)
and ``checkpoints/<settings key>/state_<step>_rank0.pt`` (the full training state, from which a re-run
with the same settings resumes; :mod:`febm.checkpoints`).
"""

from __future__ import annotations

import csv
import io
import json
import math
import resource
import sys
import time
from pathlib import Path
from typing import Any

import torch

from febm.config import config_hash
from febm.errors import FebmError
from febm.io import provenance, save_torch_atomic, write_json_atomic, write_text_atomic
from febm.objectives import NonFiniteLossError
from febm.runspec import TOY_DATASET, RunSpec
from febm.toy.failures import STATUS_COMPLETED, STATUS_FAILED, is_failed, run_name
from febm.toy.optimum import find_optimum
from febm.toy.settings import TrainSettings, mixture_from_config, scale_label
from febm.toy.train import TRAJECTORY_COLUMNS, ToyDivergedError, ToyTrainer

# What a training run may fail with and still be recorded (a run's own divergence, not bad input).
RUN_FAILURES = (NonFiniteLossError, ToyDivergedError)

ACCURACY = 0.01  # target: |mu - mu*| and |sigma - sigma*| against the exact optimum


class ToyInputError(FebmError):
    """A missing or inconsistent input file of the 1-D study."""


def peak_rss_mb() -> float:
    """Peak resident memory of this process (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def common_metadata(config: dict[str, Any], iterations: int | None = None) -> dict[str, Any]:
    return {
        "preset": config.get("preset", "paper"),
        "scale": scale_label(config, iterations),
        "standin_data": False,
        "config_hash": config_hash(config),
        "provenance": provenance(),
    }


def read_json(path: str | Path, what: str) -> dict[str, Any]:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ToyInputError(
            f"{what} {str(path)!r} does not exist; run the stage that writes it first"
        ) from None
    except json.JSONDecodeError as error:
        raise ToyInputError(f"{what} {str(path)!r} is not valid JSON ({error}); re-run its stage") from None


# ---- exact optimum -----------------------------------------------------------------------------------
def run_optimum(config: dict[str, Any], divergence: str, out: str | Path) -> dict[str, Any]:
    mixture = mixture_from_config(config)
    optimum = find_optimum(divergence, mixture)
    result = {
        **optimum.to_json(),
        "mixture": config["toy"]["mixture"],
        **common_metadata(config),
    }
    write_json_atomic(out, result)
    return result


def load_optimum(path: str | Path, divergence: str | None = None) -> dict[str, Any]:
    optimum = read_json(path, "optimum file")
    if divergence is not None and optimum.get("divergence") != divergence:
        raise ToyInputError(
            f"optimum file {str(path)!r} is for {optimum.get('divergence')!r}, not {divergence!r}; "
            f"pass results/toy/optimum/{divergence}.json"
        )
    return optimum


# ---- training ------------------------------------------------------------------------------------------
def steps_to_accuracy(trajectory: list[tuple[float, ...]], mu_opt: float, sigma_opt: float) -> int | None:
    """First logged step from which the reported estimate stays within ACCURACY of the optimum."""
    first = None
    for row in trajectory:
        step, mu_avg, sigma_avg = row[0], row[3], row[4]
        if abs(mu_avg - mu_opt) <= ACCURACY and abs(sigma_avg - sigma_opt) <= ACCURACY:
            first = int(step) if first is None else first
        else:
            first = None
    return first


def trajectory_csv(trajectory: list[tuple[float, ...]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(TRAJECTORY_COLUMNS)
    for row in trajectory:
        writer.writerow([int(row[0]), *(repr(float(v)) for v in row[1:])])
    return buffer.getvalue()


def run_training(
    config: dict[str, Any],
    method: str,
    divergence: str,
    seed: int,
    optimum_path: str | Path,
    out_dir: str | Path,
    progress: bool = True,
) -> dict[str, Any]:
    from febm.toy.density import density_ratio_report
    from febm.toy.network import flat_to_state_dict

    torch.set_num_threads(config["toy"]["threads"])
    out_dir = Path(out_dir)
    optimum = load_optimum(optimum_path, divergence)
    mixture = mixture_from_config(config)
    settings = TrainSettings.from_config(config)
    trainer = ToyTrainer(method, divergence, mixture, settings, seed)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(
            total=trainer.iterations, desc=f"{method} {divergence} seed {seed}", file=sys.stderr, leave=False
        )

    def tick(step: int) -> None:
        if bar is not None:
            bar.update(step - bar.n)

    started = time.perf_counter()
    try:
        result = trainer.run(trainer.checkpoint_dir(out_dir), progress=tick)
    except RUN_FAILURES as error:
        # The run diverged: a failure record (not a missing file), so Table 5 still comes out.
        return _record_failure(config, trainer, settings, error, time.perf_counter() - started, out_dir)
    finally:
        if bar is not None:
            bar.close()
    mu_opt, sigma_opt = optimum["mu"], optimum["sigma"]
    reached = steps_to_accuracy(result.trajectory, mu_opt, sigma_opt)
    per_step = result.wall_seconds / max(result.iterations, 1)  # wall_seconds spans resumed sessions too
    metrics: dict[str, Any] = {
        **RunSpec("toy", TOY_DATASET, method, divergence, seed).record(),  # the report reads the study here
        "mu": result.mu,
        "sigma": result.sigma,
        "mu_last_iterate": result.mu_last,
        "sigma_last_iterate": result.sigma_last,
        "mu_optimal": mu_opt,
        "sigma_optimal": sigma_opt,
        "mu_error": result.mu - mu_opt,
        "sigma_error": result.sigma - sigma_opt,
        "within_accuracy": abs(result.mu - mu_opt) <= ACCURACY and abs(result.sigma - sigma_opt) <= ACCURACY,
        "accuracy": ACCURACY,
        "iterations": result.iterations,
        "steps_to_accuracy": reached,
        "wall_seconds": result.wall_seconds,
        "seconds_per_iteration": per_step,
        "time_to_accuracy_seconds": None if reached is None else reached * per_step,
        "status": STATUS_COMPLETED,
        "resumed_from_step": result.resumed_from,
        "ratio_cap": trainer.ratio_cap,
        "settings": {**settings.__dict__},
        "peak_rss_mb": peak_rss_mb(),
        **common_metadata(config, result.iterations),
    }
    h_file: dict[str, Any] = {
        "method": method,
        "divergence": divergence,
        "hidden_units": settings.hidden_units,
        "mu": result.mu,
        "sigma": result.sigma,
        "state_dict": {},
    }
    if result.h_flat is not None:
        h_file["state_dict"] = flat_to_state_dict(result.h_flat, settings.hidden_units)
        dr = config["toy"]["density_ratio"]
        metrics["density_ratio"] = density_ratio_report(
            mixture,
            result.h_flat,
            settings.hidden_units,
            result.mu,
            result.sigma,
            dr["proposals"],
            dr["seed"] + seed,
        )
    save_torch_atomic(out_dir / "h.pt", h_file)
    write_text_atomic(out_dir / "trajectory.csv", trajectory_csv(result.trajectory))
    write_json_atomic(out_dir / "metrics.json", _finite_json(metrics))
    return metrics


def _record_failure(
    config: dict[str, Any],
    trainer: ToyTrainer,
    settings: TrainSettings,
    error: Exception,
    wall_seconds: float,
    out_dir: Path,
) -> dict[str, Any]:
    """metrics.json with status failed, the message and where it stopped; trajectory.csv up to there; an
    empty h.pt (every declared output exists, so the table and the final check still run)."""
    mu_last, sigma_last = trainer.theta.detach().tolist()
    metrics: dict[str, Any] = {
        **RunSpec("toy", TOY_DATASET, trainer.method, trainer.divergence.name, trainer.seed).record(),
        "status": STATUS_FAILED,
        "error": str(error),
        "error_type": type(error).__name__,
        "failed_at_step": trainer.step,
        "iterations": trainer.iterations,
        "mu": None,
        "sigma": None,
        "mu_last_iterate": mu_last,
        "sigma_last_iterate": sigma_last,
        "wall_seconds": trainer.wall_before + wall_seconds,
        "ratio_cap": trainer.ratio_cap,
        "settings": {**settings.__dict__},
        "peak_rss_mb": peak_rss_mb(),
        **common_metadata(config, trainer.iterations),
    }
    h_file = {
        "method": trainer.method,
        "divergence": trainer.divergence.name,
        "hidden_units": settings.hidden_units,
        "status": STATUS_FAILED,
        "state_dict": {},
    }
    save_torch_atomic(out_dir / "h.pt", h_file)
    write_text_atomic(out_dir / "trajectory.csv", trajectory_csv(trainer.trajectory))
    write_json_atomic(out_dir / "metrics.json", _finite_json(metrics))
    print(f"febm: warning: {run_name(metrics)} failed: {error}", file=sys.stderr)
    return metrics


def load_h(run_dir: str | Path) -> dict[str, Any]:
    path = Path(run_dir) / "h.pt"
    try:
        return torch.load(path, weights_only=True)
    except FileNotFoundError:
        raise ToyInputError(
            f"{str(path)!r} does not exist; run `febm toy-train` for that run first"
        ) from None


def load_run(run_dir: str | Path) -> dict[str, Any]:
    return read_json(Path(run_dir) / "metrics.json", "run metrics")


def _finite_json(value: Any) -> Any:
    """JSON has no NaN/inf: write them as null."""
    if isinstance(value, dict):
        return {k: _finite_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite_json(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


# ---- Theorem 5 -------------------------------------------------------------------------------------------
def run_stability(
    config: dict[str, Any],
    divergence: str,
    optimum_path: str | Path,
    run_dirs: list[str | Path],
    out: str | Path,
) -> dict[str, Any]:
    """Jacobian spectrum of the Eq. 19 field at the learned equilibrium of the lowest-seed f-EBM run."""
    from febm.divergences import get_divergence
    from febm.toy.network import state_dict_to_flat
    from febm.toy.stability import stability_report, summarise
    from febm.toy.tails import RatioCapped, ratio_cap_for

    torch.set_num_threads(config["toy"]["threads"])
    optimum = load_optimum(optimum_path, divergence)
    runs = []
    for run_dir in run_dirs:
        metrics = load_run(run_dir)
        if metrics["method"] != "febm" or metrics["divergence"] != divergence:
            raise ToyInputError(
                f"run {str(run_dir)!r} is {metrics['method']} on {metrics['divergence']}, not f-EBM on {divergence}"
            )
        runs.append((metrics["seed"], Path(run_dir), metrics))
    if not runs:
        raise ToyInputError("--run-dirs names no f-EBM run")
    converged = [run for run in runs if not is_failed(run[2])]
    if not converged:  # nothing learned to analyse: say so in the file the report reads
        result = {
            "divergence": divergence,
            "status": "no converged run",
            "mu_optimal": optimum["mu"],
            "sigma_optimal": optimum["sigma"],
            "statement": f"Not analysed: all {len(runs)} f-EBM runs on {divergence} failed (see Table 5).",
            **common_metadata(config),
        }
        write_json_atomic(out, result)
        return result
    seed, run_dir, metrics = min(converged, key=lambda item: item[0])
    h = load_h(run_dir)
    train = TrainSettings.from_config(config)
    base = get_divergence(divergence, exp_clamp=train.exp_clamp)
    cap = None if train.conjugate_cap is None else ratio_cap_for(base, train.conjugate_cap)
    # The field of the game that was trained: the same (capped) objective as the run.
    trained = base if cap is None else RatioCapped(base, cap)
    stability = config["toy"]["stability"]
    report = stability_report(
        trained,
        mixture_from_config(config),
        (metrics["mu"], metrics["sigma"]),
        state_dict_to_flat(h["state_dict"]).double(),
        h["hidden_units"],
        stability["grid_nodes"],
        stability["refine_steps"],
    )
    result = {
        "divergence": divergence,
        "seed": seed,
        "run_dir": str(run_dir),
        "mu_optimal": optimum["mu"],
        "sigma_optimal": optimum["sigma"],
        "learned_mu": metrics["mu"],
        "learned_sigma": metrics["sigma"],
        "ratio_cap": cap,
        **report,
        "statement": summarise(report),
        **common_metadata(config),
    }
    write_json_atomic(out, _finite_json(result))
    return result
