"""Scores from a dataset's own classifier (:mod:`febm.evaluation.classifier`), for datasets without Inception.

* ``fid``: the Fréchet distance between the samples' and the test split's penultimate-layer features
  (the same :func:`~febm.evaluation.metrics.frechet_distance` and
  :class:`~febm.evaluation.metrics.RunningMoments` as the Inception FID).
* ``conditional_accuracy``: the share of samples the classifier assigns to the class they were sampled
  for (chance: 1 / classes); None for unconditional samples.
* ``inception_score``: :func:`~febm.evaluation.metrics.inception_score` on the classifier's logits
  (at most the number of classes).

Reference rows scored the same way: ``train`` (training images with their true labels: what perfect
samples give) and ``noise`` (uniform random pixels with random labels: what nothing gives).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from febm.errors import FebmError
from febm.evaluation.classifier import SmallCNN, features
from febm.evaluation.metrics import RunningMoments, frechet_distance, inception_score

REFERENCE_KINDS = ("train", "noise")


class ClassifierScoreError(FebmError):
    """Samples the classifier cannot score (too few, wrong labels)."""


def _moments(feature_rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    moments = RunningMoments()
    moments.update(torch.from_numpy(feature_rows))
    return moments.mean_and_covariance()


def reference_statistics(
    test_images: np.ndarray, model: SmallCNN, batch_size: int = 1000
) -> tuple[np.ndarray, np.ndarray]:
    """Mean (D,) and unbiased covariance (D, D) of the classifier features of the test split."""
    if len(test_images) < 2:
        raise ClassifierScoreError(f"the reference set has {len(test_images)} images; FID needs at least 2")
    return _moments(features(model, test_images, batch_size)[0])


def classifier_scores(
    images: np.ndarray,
    labels: np.ndarray | None,
    model: SmallCNN,
    reference_mu: np.ndarray,
    reference_sigma: np.ndarray,
    splits: int = 1,
    batch_size: int = 1000,
) -> dict[str, Any]:
    """Classifier FID, conditional accuracy and Inception-Score formula of uint8 NHWC ``images``.

    ``labels``: the class each image was sampled for, or None (or all -1) for unconditional samples.
    """
    count = len(images)
    if count < max(2, splits):
        raise ClassifierScoreError(
            f"{count} images; the classifier scores need at least 2 (FID) and at least the "
            f"{splits} Inception-Score splits"
        )
    sample_features, logits = features(model, images, batch_size)
    mu, sigma = _moments(sample_features)
    is_mean, is_std, _ = inception_score(logits, splits=splits)
    num_classes = model.architecture.num_classes
    predicted = logits.argmax(axis=1)
    conditional_accuracy = None
    if labels is not None and np.any(np.asarray(labels) >= 0):
        labels = np.asarray(labels)
        if labels.shape != (count,) or labels.min() < 0 or labels.max() >= num_classes:
            raise ClassifierScoreError(
                f"labels of shape {labels.shape} spanning {labels.min()}..{labels.max()} for {count} images; "
                f"expected one label in 0..{num_classes - 1} per image (the class each was sampled for)"
            )
        conditional_accuracy = float((predicted == labels).mean())
    return {
        "fid": frechet_distance(mu, sigma, reference_mu, reference_sigma),
        "conditional_accuracy": conditional_accuracy,
        "chance_accuracy": 1.0 / num_classes,
        "inception_score": is_mean,
        "inception_score_std": is_std,
        "inception_score_splits": splits,
        "predicted_class_fractions": (np.bincount(predicted, minlength=num_classes) / count).tolist(),
        "n": count,
    }


def reference_images(
    kind: str,
    train_images: np.ndarray,
    train_labels: np.ndarray,
    count: int,
    seed: int,
    num_classes: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Images and labels of a reference row: ``train`` (a seeded subset of ``count``, all when 0 or more
    than there are) or ``noise`` (``count`` uniform random uint8 images of the train images' shape, with
    uniform random labels)."""
    rng = np.random.default_rng(seed)
    if kind == "train":
        if 0 < count < len(train_images):
            chosen = np.sort(rng.choice(len(train_images), size=count, replace=False))
            return train_images[chosen], np.asarray(train_labels)[chosen]
        return train_images, np.asarray(train_labels)
    if kind == "noise":
        count = count or len(train_images)
        images = rng.integers(0, 256, size=(count, *train_images.shape[1:]), dtype=np.uint8)
        return images, rng.integers(0, num_classes, size=count).astype(np.int64)
    raise ClassifierScoreError(f"unknown reference row {kind!r}; choose one of {', '.join(REFERENCE_KINDS)}")


@dataclass
class Samples:
    """A samples ``.npz`` of ``febm sample``: any channel count (the Inception path reads RGB only)."""

    images: np.ndarray  # uint8 (N, H, W, C)
    labels: np.ndarray | None  # (N,) int64, None when unconditional (all -1)
    record: dict[str, Any] = field(default_factory=dict)
    source: str = ""


def load_samples(path: str | Path) -> Samples:
    """``images`` uint8 NHWC, ``labels`` (-1 = unconditional) and the ``record`` JSON of a samples file."""
    path = Path(path)
    if not path.is_file():
        raise ClassifierScoreError(f"samples file {str(path)!r} does not exist; draw it with `febm sample`")
    try:
        with np.load(path, allow_pickle=False) as archive:
            if "images" not in archive.files:
                raise ClassifierScoreError(
                    f"samples file {str(path)!r} has no 'images' array (keys: {archive.files}); "
                    "pass the .npz written by `febm sample`"
                )
            images = archive["images"]
            labels = archive["labels"].astype(np.int64) if "labels" in archive.files else None
            record = json.loads(str(archive["record"])) if "record" in archive.files else {}
    except ClassifierScoreError:
        raise
    except Exception as error:  # np.load / json raise many types for a truncated or foreign file
        detail = str(error).splitlines()[0][:160] if str(error) else ""
        raise ClassifierScoreError(
            f"samples file {str(path)!r} cannot be read ({type(error).__name__}: {detail}); draw it again "
            "with `febm sample`"
        ) from None
    if images.dtype != np.uint8 or images.ndim != 4:
        raise ClassifierScoreError(
            f"samples file {str(path)!r}: images {images.shape} {images.dtype}, expected uint8 (N, H, W, C)"
        )
    if labels is not None and labels.shape != (len(images),):
        raise ClassifierScoreError(
            f"samples file {str(path)!r}: {len(images)} images but labels of shape {labels.shape}"
        )
    if labels is not None and np.all(labels < 0):
        labels = None  # febm sample writes -1 for unconditional models
    return Samples(images=images, labels=labels, record=record, source=str(path))
