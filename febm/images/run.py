"""``febm train-images``: a whole training run with resume, logging, checkpoints and result files.

Outputs (rank 0): ``OUT/model.pt`` (final energy network), ``OUT/metrics.json``, ``OUT/train_log.csv``,
``OUT/samples.png``, ``OUT/monitor.csv``, ``OUT/replay.npz``; with ``evaluation.checkpoint_selection: best_is``
also ``OUT/model_best.pt`` and ``OUT/replay_best.npz`` (the best-IS checkpoint, :mod:`febm.images.monitor`).
In the checkpoint folder: ``state_<iteration>_rank<r>.pt`` (the newest ``keep_checkpoints``; the best so
far is part of it), the live ``train_log.csv``, ``samples_latest.png`` and ``model_best.pt``.
A restarted job resumes from the newest readable checkpoint; a finished run only rewrites its outputs.
The result files are written by ``febm/images/run_outputs.py``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from febm import checkpoints
from febm.errors import FebmError
from febm.images.data import DATASETS, ImageData, load_cache
from febm.images.distributed import (
    DeviceError,
    ProcessContext,
    agree_on_minimum,
    barrier,
    start_processes,
    stop_processes,
)
from febm.images.grid import save_grid
from febm.images.monitor import MONITOR_FIELDS, BestCheckpoint, Scorer, score_buffer
from febm.images.run_outputs import (  # describe_scale: re-exported, it was public here
    BEST_MODEL,
    _model_meta,
    _save_best_model,
    _write_outputs,
    describe_scale,  # noqa: F401
)
from febm.images.train_log import TrainLog, csv_text
from febm.images.training import (
    METHODS,
    SHARED_STATE_KEYS,
    ImageTrainer,
    TrainingDivergedError,
    TrainSettings,
)
from febm.io import write_text_atomic
from febm.objectives import NonFiniteLossError
from febm.runspec import RunSpec, resume_key


class RunSetupError(FebmError):
    """Arguments or data that do not fit together."""


def check_arguments(config: dict[str, Any], dataset: str, method: str, divergence: str) -> None:
    if dataset not in DATASETS:
        raise RunSetupError(f"unknown dataset {dataset!r}; choose one of {', '.join(DATASETS)}")
    if method not in METHODS:
        raise RunSetupError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    if method == "cd" and divergence != "kl":
        raise RunSetupError(
            f"method cd is maximum likelihood (the KL divergence); pass --divergence kl, not {divergence!r}"
        )
    from febm.divergences import get_divergence

    get_divergence(divergence)


def check_device_allowed(config: dict[str, Any], context: ProcessContext) -> None:
    """Paper-scale training on a CPU would take weeks: stop at once unless the config allows it."""
    allowed = bool(config.get("workflow", {}).get("allow_cpu_paper_scale", False))
    if context.device.type == "cpu" and config["preset"] == "paper" and not allowed:
        raise DeviceError(
            "paper-scale image training needs a GPU and none is visible; use the quick preset "
            "(config/quick.yaml, `make run PRESET=quick`) or set workflow.allow_cpu_paper_scale: true"
        )


# --- resume / save ------------------------------------------------------------------------------


def resume(trainer: ImageTrainer, checkpoint_dir: Path, context: ProcessContext, key: str) -> int:
    """Load the newest checkpoint every rank can read; returns its iteration (0 for a fresh run).

    Damaged files fall back to older ones; states of other settings are refused (``febm.checkpoints``)."""
    options = {"shared_keys": SHARED_STATE_KEYS, "what": "febm train-images"}
    found = checkpoints.load_newest(
        checkpoint_dir, key, context.rank, other_folder="--checkpoint-dir", **options
    )
    iteration = agree_on_minimum(context, found[0] if found else 0)
    if iteration == 0:
        return 0
    state = found[1] if found and found[0] == iteration else None
    if state is None:  # another rank could not read this rank's newest: the newest they all can
        state = checkpoints.read_state(checkpoint_dir, iteration, context.rank, **options)
    if state is None:
        raise checkpoints.CheckpointError(
            f"no readable checkpoint at iteration {iteration} in {str(checkpoint_dir)!r}"
        )
    checkpoints.check_settings(state, key, checkpoint_dir, "--checkpoint-dir")
    try:
        trainer.load_state(state)
    except (KeyError, TypeError, ValueError, RuntimeError) as error:  # RuntimeError: shape mismatch
        raise checkpoints.CheckpointError(
            f"the checkpoint of iteration {iteration} in {str(checkpoint_dir)!r} does not fit this run "
            f"({type(error).__name__}: {str(error).splitlines()[0][:160]}); use another --checkpoint-dir "
            "or delete that folder"
        ) from None
    return iteration


def checkpoint_key(config: dict[str, Any], dataset: str, settings: TrainSettings) -> str:
    """What a checkpoint must match to be resumed: :func:`febm.runspec.resume_key` of this run (the
    workflow names the run's checkpoint folder after the same key)."""
    run = RunSpec("images", dataset, settings.method, settings.divergence, settings.seed)
    return resume_key(config, run)


def save_checkpoint(
    trainer: ImageTrainer, checkpoint_dir: Path, context: ProcessContext, keep: int, key: str
) -> None:
    state = trainer.local_state()
    if context.is_main:
        state.update(trainer.shared_state())
    checkpoints.save_state(checkpoint_dir, trainer.iteration, state, key, context.rank)
    barrier(context)  # every rank's file exists before any older one is deleted
    checkpoints.prune_states(checkpoint_dir, keep, context.rank)


# --- the run ------------------------------------------------------------------------------------


def train_images(
    config: dict[str, Any],
    *,
    dataset: str,
    method: str,
    divergence: str,
    seed: int,
    data_path: Path,
    out_dir: Path,
    checkpoint_dir: Path,
    scorer: Scorer | None = None,
    best_scorer: Scorer | None = None,
) -> dict[str, Any]:
    """Train (or resume) one run and write its result files; returns metrics (rank 0) or {}.

    ``scorer`` (:mod:`febm.images.monitor`) scores the newest replay-buffer chains every
    ``training.monitor_interval`` iterations into ``monitor.csv``; ``best_scorer`` (needed with
    ``evaluation.checkpoint_selection: best_is``) scores them every ``evaluation.best_checkpoint.interval``
    iterations for best-IS checkpoint selection (its ``evaluation.best_checkpoint.score`` entry)."""
    check_arguments(config, dataset, method, divergence)
    section = config["images"][dataset]
    context = start_processes(config["images"]["device"])
    try:
        check_device_allowed(config, context)
        data = load_cache(data_path, max_images=section["max_train_images"])
        settings = TrainSettings.from_config(
            section, method=method, divergence=divergence, seed=seed, image_channels=data.images.shape[1]
        )
        _check_data(data, dataset, settings, data_path, config)
        _check_launch(config, dataset, settings, context.world_size)
        if section["training"]["monitor_interval"] and scorer is None:
            raise RunSetupError(
                f"images.{dataset}.training.monitor_interval is set but no scorer was given; pass "
                "--classifier (the .pt of febm train-classifier) or set monitor_interval: 0"
            )
        best = None
        if config["evaluation"]["checkpoint_selection"] == "best_is":
            if best_scorer is None:
                raise RunSetupError(
                    "evaluation.checkpoint_selection is best_is but no best-checkpoint scorer was given; pass "
                    "--inception-weights (CIFAR-10, CelebA) or --classifier (Fashion-MNIST), or select final"
                )
            best = BestCheckpoint(best_scorer, **config["evaluation"]["best_checkpoint"])
        return _train(
            config, settings, data.to(context.device), context, out_dir, checkpoint_dir, dataset, scorer, best
        )
    finally:
        stop_processes(context)


def _check_launch(config: dict[str, Any], dataset: str, settings: TrainSettings, world_size: int) -> None:
    """The process count should be what training.parallel says. At paper scale a mismatch is an error (days
    of GPU time at the wrong global batch); elsewhere a warning, and metrics.json records what ran."""
    expected = settings.processes if settings.launch == "torchrun" else 1
    if world_size == expected:
        return
    fix = (
        f"start it with `torchrun --standalone --nproc_per_node={settings.processes} -m febm train-images ...` "
        "(the workflow does), or set launch: one_process"
        if settings.launch == "torchrun"
        else "start it as one process, or set launch: torchrun"
    )
    message = (
        f"images.{dataset}.training.parallel is {settings.processes} process(es) with launch "
        f"{settings.launch}, but this run has {world_size}; {fix}"
    )
    if config["preset"] == "paper":
        raise RunSetupError(message)
    print(f"febm: warning: {message} (global batch {settings.batch_size * world_size})", file=sys.stderr)


def _check_data(data: ImageData, dataset: str, settings: TrainSettings, path: Path, config: dict) -> None:
    if data.dataset != dataset:
        raise RunSetupError(f"{str(path)!r} holds {data.dataset!r} data, but --dataset is {dataset!r}")
    if settings.network.num_classes > data.num_classes:
        raise RunSetupError(f"images.{dataset}.conditional is true but {str(path)!r} has no class labels")
    if data.standin and not config["images"]["standin_data"]:
        raise RunSetupError(
            f"{str(path)!r} was prepared from stand-in data but images.standin_data is false; "
            "prepare the real dataset, or use the smoke preset"
        )


def _train(
    config: dict[str, Any],
    settings: TrainSettings,
    data: ImageData,
    context: ProcessContext,
    out_dir: Path,
    checkpoint_dir: Path,
    dataset: str,
    scorer: Scorer | None,
    best: BestCheckpoint | None,
) -> dict[str, Any]:
    from tqdm import tqdm

    training_section = config["images"][dataset]["training"]
    started = time.time()
    trainer = ImageTrainer(settings, data, context.device, rank=context.rank, world_size=context.world_size)
    key = checkpoint_key(config, dataset, settings)
    resumed_from = resume(trainer, checkpoint_dir, context, key)
    log = TrainLog(checkpoint_dir / "train_log.csv", resumed_from) if context.is_main else None
    monitor_log = (
        TrainLog(checkpoint_dir / "monitor.csv", resumed_from, MONITOR_FIELDS, after_step=True)
        if context.is_main
        else None
    )
    monitor_interval = training_section["monitor_interval"] if scorer is not None else 0
    bar = tqdm(
        total=settings.iterations,
        initial=resumed_from,
        desc=f"{dataset} {settings.method} {settings.divergence} seed {settings.seed}",
        unit="it",
        file=sys.stderr,
        disable=not context.is_main,
        dynamic_ncols=True,
    )
    try:
        while trainer.iteration < settings.iterations:
            try:
                row = trainer.step()
            except (TrainingDivergedError, NonFiniteLossError) as error:
                raise TrainingDivergedError(f"{error}; {_last_good(checkpoint_dir)}") from None
            if log is not None:
                log.append(row)
            bar.set_postfix(e_pos=f"{row['e_pos_mean']:.3g}", e_neg=f"{row['e_neg_mean']:.3g}", refresh=False)
            bar.update(1)
            done = trainer.iteration
            if monitor_log is not None and monitor_interval and done % monitor_interval == 0:
                row = score_buffer(trainer.buffer, training_section["monitor_samples"], scorer, done)
                if row is not None:
                    monitor_log.append(row)
                    monitor_log.flush()
            final = done == settings.iterations
            # Rank 0 selects (as the original's process 0), before the state is saved, so it holds the best.
            if best is not None and context.is_main and best.due(done, final, trainer.best):
                improved = best.consider(trainer.best, trainer.buffer, trainer.energy, done)
                if improved is not None:
                    trainer.best = improved
                    # The live copy; the result file is written from the training state at the end.
                    _save_best_model(
                        checkpoint_dir / BEST_MODEL,
                        trainer,
                        _model_meta(config, settings, trainer, dataset),
                        best,
                    )
            if done % training_section["checkpoint_interval"] == 0 or done == settings.iterations:
                if log is not None:
                    log.flush()
                    monitor_log.flush()
                save_checkpoint(trainer, checkpoint_dir, context, training_section["keep_checkpoints"], key)
            if context.is_main and done % training_section["sample_interval"] == 0:
                save_grid(trainer.last_negatives, checkpoint_dir / "samples_latest.png")
    finally:
        bar.close()
        if log is not None:
            log.close()
            monitor_log.close()
    if not context.is_main:
        return {}
    write_text_atomic(out_dir / "monitor.csv", csv_text(monitor_log.rows(), MONITOR_FIELDS))
    return _write_outputs(
        config, settings, trainer, log, out_dir, dataset, resumed_from, started, context, best
    )


def _last_good(checkpoint_dir: Path) -> str:
    saved = checkpoints.saved_iterations(checkpoint_dir)
    if not saved:
        return "no checkpoint was written yet; lower images.*.training.lr or enable exp_clamp and rerun"
    return (
        f"the last good checkpoint (iteration {saved[0]}) is kept in {str(checkpoint_dir)!r}; "
        "lower the learning rate or change the divergence/exp_clamp before resuming"
    )
