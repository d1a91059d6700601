"""Sample quality during training: every ``monitor_interval`` iterations the newest persistent chains of the
replay buffer (what the model is sampling at that point) are scored by a frozen scorer, and the row goes to
``monitor.csv``. Reading the buffer draws no random numbers, so a monitored run trains bit-identically to an
unmonitored one.

The scorer is any callable ``(images uint8 (N, H, W, C), labels (N,)) -> {metric: value}``; for datasets
without Inception statistics it is the classifier of ``febm train-classifier``
(:class:`ClassifierMonitor`), and the same hook serves other scorers.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

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
