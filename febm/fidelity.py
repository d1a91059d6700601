"""The fidelity switchboard: every setting of the image study in which the released code and the paper's
Algorithm 1 (or febm's cheaper choice) differ and which can move Tables 1-2, with the original's value and
its source file.

The schema's defaults (the paper preset) follow the released code in every one of them
(tests/test_fidelity.py holds them to it); ``config/fast.yaml`` switches the training ones to Algorithm 1
as written. Each stage records the switches it acted on (``fidelity`` in the training run's
``metrics.json``, in the samples' record and in the score file), and the report lists them per run.
Torch-free.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

# Datasets the released code's evaluation (Inception, reference statistics) applies to.
INCEPTION_DATASETS = ("cifar10", "celeba32")
STAGES = ("train", "sample", "score")


@dataclass(frozen=True)
class Switch:
    """One setting: ``key`` below ``images.<dataset>`` (training) or the whole config (``evaluation.``)."""

    key: str
    stage: str  # the stage that acts on it: train, sample or score
    original: Any  # the released code's value
    source: str  # the original's file that shows it
    original_does: str
    otherwise: str  # what the other values do (the documented alternative)
    datasets: tuple[str, ...] | None = None  # None: every dataset
    methods: tuple[str, ...] | None = None  # the training methods it acts on; None: all
    # Whether a value follows the original; equality unless said otherwise.
    follows: Callable[[Any], bool] | None = None

    def path(self, dataset: str) -> tuple[str, ...]:
        parts = tuple(self.key.format(dataset=dataset).split("."))
        return parts if parts[0] == "evaluation" else ("images", dataset, *parts)

    def value(self, config: Mapping[str, Any], dataset: str) -> Any:
        node: Any = config
        for part in self.path(dataset):
            node = node[part]
        return node

    def is_followed(self, value: Any) -> bool:
        return self.follows(value) if self.follows is not None else value == self.original


LATEST_REPORTED_BEST = 79_300  # the latest best-IS checkpoint the original's README resumes from

SWITCHES = (
    Switch(
        "training.second_sampler_run",
        "train",
        True,
        "image_generation/train_febm.py",
        "the H step and the E step run the sampler separately (same starts, fresh noise): two runs per iteration",
        "false: one sampler run shared by both steps, as Algorithm 1 is written (half the sampling cost)",
        methods=("febm",),
    ),
    Switch(
        "replay.relabel",
        "train",
        True,
        "image_generation/utils.py (ReplayBuffer)",
        "the buffer stores images only: a replayed chain continues under the current batch's label",
        "false: each chain keeps the label it was sampled for",
    ),
    Switch(
        "replay.original_quantisation",
        "train",
        True,
        "image_generation/train_febm.py",
        "chains are stored as floor(255 x) and read back as (k + U(0, 1))/256: values shrink by 255/256 per round trip",
        "false: floor(256 x), the data's own dequantisation",
    ),
    Switch(
        "training.parallel.processes",
        "train",
        4,
        "image_generation/README.md (4 GPUs, Horovod)",
        "4 processes x 128 images: global batch 512, gradients averaged, a replay buffer per process",
        "fewer processes: a smaller global batch and fewer chains (the report labels the run reduced)",
    ),
    Switch(
        "training.batch_size",
        "train",
        128,
        "image_generation/README.md (--batch_size=128)",
        "128 images per process",
        "other sizes change the global batch",
    ),
    Switch(
        "training.iterations",
        "train",
        LATEST_REPORTED_BEST,
        "image_generation/README.md (--resume_iter)",
        "the total is not stated; the reported best-IS checkpoints lie at iterations 45,900-79,300",
        f"a budget below {LATEST_REPORTED_BEST:,} cannot reach the reported checkpoints",
        follows=lambda value: value >= LATEST_REPORTED_BEST,
    ),
    Switch(
        "training.warmup_iterations",
        "train",
        11,
        "image_generation/train_febm.py (itr <= 10)",
        "the first 11 iterations update only the L2 terms and store no samples",
        "other counts start f-EBM's updates earlier or later",
        methods=("febm", "dual"),
    ),
    Switch(
        "training.exp_clamp",
        "train",
        5.0,
        "image_generation/train_febm.py",
        "every exponent inside g and c is clamped at 5",
        "null: no clamp; other values clamp elsewhere",
        methods=("febm", "dual"),
    ),
    Switch(
        "evaluation.checkpoint_selection",
        "train",
        "best_is",
        "image_generation/train_febm.py (model selection)",
        "every 100 iterations the Inception Score of 128 buffer samples decides whether the checkpoint is kept",
        "final: the checkpoint at the end of training is scored",
    ),
    Switch(
        "evaluation.protocol",
        "sample",
        "paper",
        "image_generation/test_inception_febm.py",
        "a persistent buffer of 1,000 chains per round, about 700 Langevin steps per image",
        "plain: fresh chains from noise; replay: the run's final buffer continued",
    ),
    Switch(
        "evaluation.paper_protocol.grad_clip",
        "sample",
        0.05,
        "image_generation/test_inception_febm.py",
        "the evaluation sampler clips gradients at 0.05 (its flag's default), training at 0.01",
        "0.01: the training sampler's clip",
    ),
    Switch(
        "evaluation.num_samples",
        "sample",
        50_000,
        "image_generation/README.md",
        "IS and FID on 50,000 samples",
        "fewer samples bias FID upwards",
    ),
    Switch(
        "evaluation.inception_score.splits",
        "score",
        10,
        "image_generation/inception.py",
        "IS as mean +- std over 10 splits of 5,000",
        "other splits change IS and its spread",
        datasets=INCEPTION_DATASETS,
    ),
    Switch(
        "evaluation.reference.{dataset}.set",
        "score",
        "train+test",
        "image_generation/fid.py",
        "FID against all 60,000 CIFAR-10 images (train and test)",
        "train: the 50,000 training images only",
        datasets=("cifar10",),
    ),
)


def switches(dataset: str, stage: str | None = None, method: str | None = None) -> list[Switch]:
    """The switches that apply to ``dataset`` (acted on by ``stage`` and ``method``, where given)."""
    if stage is not None and stage not in STAGES:
        raise ValueError(f"stage must be one of {STAGES}, got {stage!r}")
    return [
        switch
        for switch in SWITCHES
        if (switch.datasets is None or dataset in switch.datasets)
        and stage in (None, switch.stage)
        and (method is None or switch.methods is None or method in switch.methods)
    ]


def fidelity_record(
    config: Mapping[str, Any], dataset: str, stage: str | None = None, method: str | None = None
) -> list[dict[str, Any]]:
    """One entry per switch: its key, this config's value, the original's, whether it follows, the source."""
    record = []
    for switch in switches(dataset, stage, method):
        value = switch.value(config, dataset)
        record.append(
            {
                "key": ".".join(switch.path(dataset)),
                "stage": switch.stage,
                "value": value,
                "original": switch.original,
                "follows_original": switch.is_followed(value),
                "source": switch.source,
                "original_does": switch.original_does,
                "otherwise": switch.otherwise,
            }
        )
    return record


def score_fidelity(
    metadata: Mapping[str, Any], config: Mapping[str, Any], dataset: str | None
) -> list[dict[str, Any]]:
    """A score file's switches: training's (from the sampled checkpoint), sampling's (the samples' record)
    and the scoring stage's own, from ``config``."""
    model = metadata.get("model") or {}
    recorded = [*(model.get("fidelity") or []), *(metadata.get("fidelity") or [])]
    return recorded + (fidelity_record(config, dataset, "score") if dataset else [])


def deviations(config: Mapping[str, Any], dataset: str) -> list[str]:
    """``key = value`` of every switch that does not follow the original (empty: the original's recipe)."""
    return [
        f"{entry['key']} = {entry['value']!r}"
        for entry in fidelity_record(config, dataset)
        if not entry["follows_original"]
    ]
