"""What a finished (or reloaded) image training run writes: ``model.pt`` and its metadata, the best-IS checkpoint
``model_best.pt`` / ``replay_best.npz``, ``replay.npz``, ``train_log.csv``, ``samples.png`` and ``metrics.json``
(with the final-window means and the scale description). The run itself is ``febm/images/run.py``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from febm.config import config_hash
from febm.fidelity import fidelity_record
from febm.images.checkpoint import save_energy_model
from febm.images.distributed import ProcessContext
from febm.images.grid import save_grid
from febm.images.monitor import BestCheckpoint, best_summary
from febm.images.networks import build_energy_network, parameter_count
from febm.images.replay import save_replay_chains
from febm.images.train_log import LOG_FIELDS, TrainLog, csv_text
from febm.images.training import ImageTrainer, TrainSettings
from febm.io import provenance, write_json_atomic, write_text_atomic

SUMMARY_WINDOW = 100
BEST_MODEL = "model_best.pt"
BEST_REPLAY = "replay_best.npz"


# The original's global batch and chains: 4 Horovod processes x 128 images, one 10,000-chain buffer each.
ORIGINAL_GLOBAL_BATCH, ORIGINAL_REPLAY_CHAINS = 512, 40000


def parallel_record(settings: TrainSettings, world_size: int) -> dict[str, Any]:
    """How the global batch was made (training.parallel), recorded in metrics.json and model.pt."""
    return {
        "launch": settings.launch,
        "processes": settings.processes,
        "world_size": world_size,
        "batch_per_process": settings.batch_size,
        "global_batch": settings.batch_size * world_size,
        "replay_chains": settings.replay_capacity * world_size,
    }


def describe_scale(config: dict[str, Any], settings: TrainSettings, world_size: int) -> str:
    """ "paper" only for the paper preset with the original's global batch and number of chains."""
    parallel = parallel_record(settings, world_size)
    original = (parallel["global_batch"], parallel["replay_chains"]) == (
        ORIGINAL_GLOBAL_BATCH,
        ORIGINAL_REPLAY_CHAINS,
    )
    if config["preset"] == "paper" and original:
        return "paper"
    if config["preset"] == "paper":
        return (
            f"reduced: global batch {parallel['global_batch']} and {parallel['replay_chains']:,} replay chains "
            f"(the original: {ORIGINAL_GLOBAL_BATCH}, {ORIGINAL_REPLAY_CHAINS:,})"
        )
    return (
        f"reduced: {settings.iterations} iterations, width {settings.network.num_filters}, "
        f"global batch {parallel['global_batch']} ({world_size} process(es) x {settings.batch_size}), "
        f"{settings.sampler.steps} Langevin steps"
    )


def _model_meta(
    config: dict[str, Any], settings: TrainSettings, trainer: ImageTrainer, dataset: str
) -> dict[str, Any]:
    """What model.pt (and model_best.pt) state about the network they hold."""
    return {
        "dataset": dataset,
        "method": settings.method,
        "divergence": settings.divergence,
        "seed": settings.seed,
        "iterations": trainer.iteration,
        "sampler": {
            "steps": settings.sampler.steps,
            "step_size": settings.sampler.step_size,
            "noise_std": settings.sampler.noise_std,
            "grad_clip": settings.sampler.grad_clip,
        },
        "standin_data": bool(trainer.data.standin),
        "preset": config["preset"],
        "config_hash": config_hash(config),
        "checkpoint_selection": "final",
        # The switches of febm.fidelity this run trained under (the sampler records its own).
        "fidelity": fidelity_record(config, dataset, "train", settings.method),
    }


def _save_best_model(
    path: Path, trainer: ImageTrainer, meta: dict[str, Any], best: BestCheckpoint
) -> dict[str, Any]:
    """Write the best checkpoint so far (model.pt's format) to ``path``; returns what it states.

    A run that was never scored (its buffer never held two chains) keeps the final network, labelled so."""
    network = trainer.energy
    if trainer.best is not None:
        network = build_energy_network(trainer.settings.network)
        network.load_state_dict(trainer.best["energy"])
    summary = {
        **best_summary(trainer.best),
        "metric": best.metric,
        "interval": best.interval,
        "samples_per_scoring": best.samples,
        "final_iteration": trainer.iteration,
        "never_scored": trainer.best is None,
    }
    best_meta = {**meta, "checkpoint_selection": "best_is", "best_checkpoint": summary}
    if trainer.best is not None:
        best_meta["iterations"] = trainer.best["iteration"]
    save_energy_model(path, network, best_meta)
    return summary


def _write_outputs(
    config: dict[str, Any],
    settings: TrainSettings,
    trainer: ImageTrainer,
    log: TrainLog,
    out_dir: Path,
    dataset: str,
    resumed_from: int,
    started: float,
    context: ProcessContext,
    best: BestCheckpoint | None,
) -> dict[str, Any]:
    rows = log.rows()
    meta = _model_meta(config, settings, trainer, dataset)
    save_energy_model(out_dir / "model.pt", trainer.energy, meta)
    # The chains the run ended with, for the `replay` evaluation protocol (rank 0's buffer).
    save_replay_chains(out_dir / "replay.npz", *trainer.buffer.newest(len(trainer.buffer)), trainer.iteration)
    best_record = None
    if best is not None:
        best_record = _save_best_model(out_dir / BEST_MODEL, trainer, meta, best)
        if trainer.best is None:
            chains, iteration = trainer.buffer.newest(len(trainer.buffer)), trainer.iteration
        else:
            chains = (trainer.best["replay_images"], trainer.best["replay_labels"])
            iteration = trainer.best["iteration"]
        save_replay_chains(out_dir / BEST_REPLAY, *chains, iteration)
    write_text_atomic(out_dir / "train_log.csv", csv_text(rows))
    if trainer.last_negatives is None:  # finished run reloaded: draw fresh grid samples from the buffer
        starts, _ = trainer.buffer.chain_starts(
            None, min(64, max(1, len(trainer.buffer))), reinit_prob=0.0, generator=trainer.generator
        )
        trainer.last_negatives = starts
    save_grid(trainer.last_negatives, out_dir / "samples.png", run=meta)  # the run identity goes in the PNG
    window = [row for row in rows[-SUMMARY_WINDOW:]]
    metrics = {
        **meta,
        "scale": describe_scale(config, settings, context.world_size),
        "world_size": context.world_size,
        "parallel": parallel_record(settings, context.world_size),
        "parameter_count": parameter_count(trainer.energy),
        "resumed_from_iteration": resumed_from,
        # Which checkpoint evaluation scores (evaluation.checkpoint_selection) and, for best_is, which one.
        "checkpoint_selection": "best_is" if best is not None else "final",
        "best_checkpoint": best_record,
        "wall_seconds": time.time() - started,
        "final_window": _window_means(window),
        "provenance": provenance(),
    }
    write_json_atomic(out_dir / "metrics.json", metrics)
    return metrics


def _window_means(rows: list[dict[str, str]]) -> dict[str, float]:
    """Means of the logged scalars over the last iterations (empty fields skipped)."""
    means = {}
    for field in LOG_FIELDS[2:]:
        values = [float(row[field]) for row in rows if row.get(field) not in (None, "")]
        if values:
            means[field] = sum(values) / len(values)
    means["iterations_in_window"] = float(len(rows))
    return means
