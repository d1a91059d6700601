"""Run identity: which runs a config asks for, where each run's files go, and which settings change them.

A run is (study, dataset, method, divergence, seed). Its *settings key* hashes only the settings that
change that run's result, so growing the grid (one more seed, divergence or dataset) or editing a
figure option leaves every finished run, and every resumable checkpoint folder, where it was. The
Snakefile uses these functions for its job list, its rerun triggers (``params``) and its checkpoint
folders; ``febm toy-study`` uses the same run list and layout. Torch-free: the Snakefile imports it.

Paths are relative to a results folder (the workflow's ``results/``); the package never assumes
where that folder is.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from febm.config import config_hash

TOY_DATASET = "mixture"
# Table 5's baselines are defined for KL only: contrastive divergence (Eq. 8) and maximum likelihood.
TOY_BASELINES = ("cd", "mle")
# Image methods: f-EBM (Algorithm 1), contrastive divergence (the paper's baseline), and the dual form of
# Theorem 1 (Section 3.1.2: a critic and a REINFORCE-like energy gradient; the paper's negative result).
IMAGE_METHODS = ("febm", "cd", "dual")
# Contrastive divergence minimises KL (Section 6.2); image CD runs are recorded under it.
BASELINE_DIVERGENCE = "kl"

# Settings that decide how long a run is or how often it writes files, not which model it computes at a
# given iteration: a checkpoint made under other values can still be resumed.
RESUMABLE_TRAINING_KEYS = (
    "iterations",
    "energy_limit",
    "checkpoint_interval",
    "keep_checkpoints",
    "sample_interval",
    "monitor_interval",
    "monitor_samples",
)
# images.<dataset> keys that decide which images the prepared data file holds.
DATA_KEYS = ("max_train_images", "split", "crop_size")


@dataclass(frozen=True, order=True)
class RunSpec:
    """One training run of the grid."""

    study: str  # "toy" or "images"
    dataset: str  # "mixture" for the 1-D study, else an image dataset
    method: str
    divergence: str
    seed: int

    @property
    def name(self) -> str:
        """The run's folder below its study's ``runs`` folder (and its name in logs)."""
        run = f"{self.method}/{self.divergence}/seed{self.seed}"
        return run if self.study == "toy" else f"{self.dataset}/{run}"

    @property
    def run_dir(self) -> str:
        """The run's result folder, relative to the results folder."""
        return f"{self.study}/runs/{self.name}"

    @property
    def job_name(self) -> str:
        """``name`` with ``_`` for ``/``: log and benchmark file names."""
        return self.name.replace("/", "_")

    def record(self) -> dict[str, Any]:
        """The identity fields every result file of this run records."""
        return {
            "study": self.study,
            "dataset": self.dataset,
            "method": self.method,
            "divergence": self.divergence,
            "seed": self.seed,
        }


# What identifies a run in every file it leads to (metrics, samples, scores, sample grids).
IDENTITY_FIELDS = ("dataset", "method", "divergence", "seed")


def identity_of_record(record: Mapping[str, Any]) -> dict[str, Any] | None:
    """The run identity a record states, or None if it lacks a field: read from the record itself, else
    from its nested ``model`` (the checkpoint's own record, which ``febm sample`` keeps with the samples)."""
    model = record.get("model")
    nested = model if isinstance(model, Mapping) else {}
    identity = {
        key: record.get(key) if record.get(key) is not None else nested.get(key) for key in IDENTITY_FIELDS
    }
    return None if any(value is None for value in identity.values()) else identity


def toy_runs(config: Mapping[str, Any]) -> list[RunSpec]:
    """f-EBM for every configured divergence and the CD / MLE baselines on KL, for every seed."""
    toy = config["toy"]
    runs = [RunSpec("toy", TOY_DATASET, "febm", d, s) for d in toy["divergences"] for s in toy["seeds"]]
    runs += [
        RunSpec("toy", TOY_DATASET, m, BASELINE_DIVERGENCE, s) for m in TOY_BASELINES for s in toy["seeds"]
    ]
    return runs


def toy_optimum_divergences(config: Mapping[str, Any]) -> list[str]:
    """Every divergence with an exact optimum: the configured ones plus KL for the baselines."""
    divergences = list(config["toy"]["divergences"])
    return divergences + ([] if BASELINE_DIVERGENCE in divergences else [BASELINE_DIVERGENCE])


def image_runs(config: Mapping[str, Any], datasets: Iterable[str] | None = None) -> list[RunSpec]:
    """Every image training run: dataset x (f-EBM per divergence, CD once, dual form per dual divergence) x seed."""
    images = config["images"]
    runs = []
    for dataset in images["datasets"] if datasets is None else datasets:
        for method in images["methods"]:
            divergences = {"febm": images["divergences"], "dual": images["dual_divergences"]}.get(
                method, [BASELINE_DIVERGENCE]
            )
            runs += [RunSpec("images", dataset, method, d, s) for d in divergences for s in images["seeds"]]
    return runs


# --- settings keys ------------------------------------------------------------------------------


def _toy_settings(config: Mapping[str, Any], stage: str) -> dict[str, Any]:
    toy = config["toy"]
    selected: dict[str, Any] = {"mixture": toy["mixture"]}
    if stage == "toy_optimum":
        return selected
    selected.update(train=toy["train"], threads=toy["threads"])
    if stage == "toy_train":
        selected["density_ratio"] = toy["density_ratio"]
    elif stage == "toy_convergence":
        selected["convergence"] = toy["convergence"]
    elif stage == "toy_stability":
        selected["stability"] = toy["stability"]
    elif stage == "toy_figure":
        selected.update(
            density_ratio=toy["density_ratio"], convergence=toy["convergence"], figures=toy["figures"]
        )
    elif stage != "toy_table":
        raise ValueError(f"unknown toy stage {stage!r}")
    return selected


def _dataset_section(config: Mapping[str, Any], dataset: str | None) -> dict[str, Any]:
    if dataset is None:
        raise ValueError("image stages need a dataset")
    return config["images"][dataset]


def _image_settings(config: Mapping[str, Any], stage: str, dataset: str | None) -> dict[str, Any]:
    images, evaluation = config["images"], config["evaluation"]
    selected: dict[str, Any] = {"standin_data": images["standin_data"]}
    if stage in ("prepare_data", "fid_stats", "train_classifier"):
        section = _dataset_section(config, dataset)
        selected["data"] = {key: section[key] for key in DATA_KEYS if key in section}
    if stage in ("train_images", "resume"):
        section = copy.deepcopy(_dataset_section(config, dataset))
        if stage == "resume":
            for key in RESUMABLE_TRAINING_KEYS:
                section["training"].pop(key, None)
        selected["model"] = section
        if evaluation["checkpoint_selection"] == "best_is":
            # The best must be tracked from iteration 0: a run with best-IS selection is a run of its own
            # (final-checkpoint runs keep their key, and switching back resumes them).
            selected["best_checkpoint"] = evaluation["best_checkpoint"]
    elif stage == "fid_stats":
        reference = evaluation["reference"]
        selected.update(
            inception=evaluation["inception"],
            reference=reference.get(dataset, {}),
            subset_seed=reference["subset_seed"],
        )
    elif stage == "sample_images":
        keys = (
            "num_samples",
            "protocol",
            "sample_seed",
            "paper_protocol",
            "plain_protocol",
            "replay_protocol",
        )
        selected.update({key: evaluation[key] for key in keys})
    elif stage == "score_images":
        selected.update(inception=evaluation["inception"], inception_score=evaluation["inception_score"])
    elif stage in ("sample_grid", "appendix_figure"):
        selected["figures"] = evaluation["figures"]
    elif stage in ("train_classifier", "classifier_score"):
        # Threads change the speed, not the numbers that matter; everything else of the scorer counts.
        selected["classifier"] = {k: v for k, v in evaluation["classifier"].items() if k != "threads"}
    elif stage == "classifier_table":
        pass
    elif stage == "image_table":
        selected["checkpoint_selection"] = evaluation["checkpoint_selection"]
    elif stage == "gpu_check":
        selected.update(device=images["device"], workflow=config.get("workflow", {}))
    elif stage != "prepare_data":
        raise ValueError(f"unknown image stage {stage!r}")
    return selected


def stage_settings(config: Mapping[str, Any], stage: str, dataset: str | None = None) -> dict[str, Any]:
    """The settings a stage's output depends on (besides its input files and wildcards), with the preset."""
    if stage.startswith("toy_"):
        selected = _toy_settings(config, stage)
    elif stage == "report":
        selected = {"report": config["report"]}
    else:
        selected = _image_settings(config, stage, dataset)
    return {"preset": config["preset"], **selected}


def settings_key(config: Mapping[str, Any], stage: str, dataset: str | None = None) -> str:
    """A short hash of :func:`stage_settings`: a Snakemake rerun trigger."""
    return config_hash(_plain(stage_settings(config, stage, dataset)))


def resume_key(config: Mapping[str, Any], run: RunSpec) -> str:
    """What an image checkpoint must match to be resumed: the run's identity and training settings
    without the run length and file cadence (so ``iterations: 2000 -> 4000`` continues a finished run)."""
    return config_hash(_plain({**run.record(), **stage_settings(config, "resume", run.dataset)}))


def checkpoint_dir(config: Mapping[str, Any], run: RunSpec, resources: str = "resources") -> str:
    """Resumable state of an image run: a folder per run and resume key, so runs with other settings
    never meet, and switching a setting back finds its checkpoints again."""
    return f"{resources}/checkpoints/{run.name}/{resume_key(config, run)}"


def _plain(value: Any) -> Any:
    """Tuples as lists, so that the hash equals the one of the same config read back from YAML."""
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value
