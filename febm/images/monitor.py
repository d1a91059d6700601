"""Sample quality during training: every ``monitor_interval`` iterations the newest persistent chains of the
replay buffer (what the model is sampling at that point) are scored by a frozen scorer, and the row goes to
``monitor.csv``. Reading the buffer draws no random numbers, so a monitored run trains bit-identically to an
unmonitored one.

The scorer is any callable ``(images uint8 (N, H, W, C), labels (N,)) -> {metric: value}``; for datasets
without Inception statistics it is the classifier of ``febm train-classifier``
(:class:`ClassifierMonitor`), and the same hook serves other scorers.

Best-IS checkpoint selection (``evaluation.checkpoint_selection: best_is``, docs/original-code.md section 6)
is the same mechanism with its own scorer and cadence (:class:`BestCheckpoint`): every
``evaluation.best_checkpoint.interval`` iterations the newest ``samples`` chains are scored, by
:class:`InceptionScorer` (one split, the original's) on CIFAR-10 / CelebA and by the classifier's IS formula
on Fashion-MNIST, and the energy network is kept whenever the score improves. It draws no random numbers
either, so training with it is bit-identical to training without it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from febm.images.replay import ReplayBuffer

MONITOR_FIELDS = ["iteration", "conditional_accuracy", "fid", "inception_score"]
Scorer = Callable[[np.ndarray, np.ndarray], dict[str, Any]]


class ClassifierMonitor:
    """Classifier FID against the test split, conditional accuracy and the IS formula (febm classifier-score)."""

    def __init__(self, classifier_path: str | Path, data_path: str | Path, device: Any = "cpu") -> None:
        from febm.evaluation.classifier import load_classifier, load_labelled_data
        from febm.evaluation.classifier_scores import reference_statistics

        self.model, self.record = load_classifier(classifier_path, device)
        self.mu, self.sigma = reference_statistics(load_labelled_data(data_path).test_images, self.model)

    def __call__(self, images: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
        from febm.evaluation.classifier_scores import classifier_scores

        return classifier_scores(images, labels, self.model, self.mu, self.sigma)


def score_buffer(buffer: ReplayBuffer, count: int, scorer: Scorer, iteration: int) -> dict[str, Any] | None:
    """One monitor row, or None while the buffer holds fewer than two chains."""
    if len(buffer) < 2:
        return None
    images, labels = buffer.newest(count)
    scores = scorer(images.permute(0, 2, 3, 1).cpu().numpy(), labels.cpu().numpy())
    return {"iteration": iteration, **{key: scores.get(key) for key in MONITOR_FIELDS[1:]}}


class InceptionScorer:
    """The Inception Score of a small sample (one split, as the original's model selection): the best-IS scorer
    of CIFAR-10 and CelebA, with the weights and preprocessing of ``evaluation.inception`` and the one IS
    function of the project (:func:`febm.evaluation.metrics.inception_score`).

    The network is loaded at the first call, on the process's current device (``images.device``: auto =
    CUDA when available), so that with several processes only rank 0, which scores, holds a copy."""

    def __init__(
        self, weights: str | Path, evaluation: Mapping[str, Any], device: str = "auto", splits: int = 1
    ) -> None:
        from febm.evaluation.weights import weights_info

        self.weights = Path(weights)
        self.standin_weights = bool(weights_info(self.weights)["standin"])  # also: the file exists
        self.settings = dict(evaluation["inception"])
        self.device = device
        self.splits = splits
        self._model: Any = None

    def _load(self) -> Any:
        import torch

        from febm.evaluation.inception import load_fid_inception

        use_cuda = self.device == "cuda" or (self.device == "auto" and torch.cuda.is_available())
        return load_fid_inception(
            self.weights,
            torch.device("cuda") if use_cuda else torch.device("cpu"),
            preprocessing=self.settings["preprocessing"],
            channels_last=self.settings["channels_last"],
        )

    def __call__(self, images: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
        from febm.evaluation.extract import run_inception
        from febm.evaluation.metrics import inception_score

        if self._model is None:
            self._model = self._load()
        outputs = run_inception(images, self._model, batch_size=self.settings["batch_size"], progress=False)
        mean, _, _ = inception_score(outputs.logits, splits=self.splits)
        return {"inception_score": mean}


class BestCheckpoint:
    """Best-IS selection: :meth:`consider` scores the newest ``samples`` chains every ``interval`` iterations
    and returns the new best state when the score beats the best so far (strictly, as the original's
    ``if score > best``), else None. The state (:class:`febm.images.training.ImageTrainer` ``.best``, saved with
    the training state) holds the score, its iteration, the energy network and the replay chains of that
    point (for the ``replay`` evaluation protocol), all on the CPU."""

    def __init__(
        self, scorer: Scorer, *, interval: int, samples: int, score: str = "inception_score"
    ) -> None:
        self.scorer = scorer
        self.interval = interval
        self.samples = samples
        self.metric = score

    def due(self, iteration: int, final: bool, best: Mapping[str, Any] | None) -> bool:
        """A scoring point; also the last iteration of a run that has not been scored yet (a run shorter
        than one interval still gets a best checkpoint: its first scored one)."""
        return iteration % self.interval == 0 or (final and best is None)

    def consider(
        self, best: Mapping[str, Any] | None, buffer: ReplayBuffer, energy: nn.Module, iteration: int
    ) -> dict[str, Any] | None:
        row = score_buffer(buffer, self.samples, self.scorer, iteration)
        if row is None or row.get(self.metric) is None:
            return None
        score = float(row[self.metric])
        if not math.isfinite(score) or (best is not None and score <= best["score"]):
            return None
        chains, labels = buffer.newest(len(buffer))
        return {
            "score": score,
            "iteration": iteration,
            "metric": self.metric,
            "samples": min(self.samples, len(buffer)),
            "energy": {
                key: value.detach().to("cpu", copy=True) for key, value in energy.state_dict().items()
            },
            "replay_images": chains.to("cpu", copy=True),
            "replay_labels": labels.to("cpu", copy=True),
        }


def best_summary(best: Mapping[str, Any] | None) -> dict[str, Any]:
    """What metrics.json and model_best.pt state about the kept checkpoint (no tensors)."""
    if best is None:
        return {"iteration": None, "score": None, "metric": None, "samples": None}
    return {key: best[key] for key in ("iteration", "score", "metric", "samples")}
