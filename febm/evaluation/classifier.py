"""A small CNN classifier that scores samples of datasets without an Inception network (Fashion-MNIST).

Trained on the train split by its own fixed rule (config ``evaluation.classifier``), then frozen. Its
128-d penultimate layer is the feature space of the classifier FID and its logits give the conditional
accuracy and the Inception-Score formula (:mod:`febm.evaluation.classifier_scores`).

Input: uint8 NHWC images (the samples' and the prepared cache's format), read as x = k / 255 in [0, 1].
Network: two conv blocks (conv 3x3, 2x2 max-pool, batch norm, ReLU), a 128-d ReLU feature layer and a
linear layer to the class logits. Training: Adam with a cosine decay to zero over ``epochs``, mini-batches
shuffled by a seeded generator, so a run is repeatable for a fixed seed, device and thread count.

File (``resources/classifier/<dataset>.pt``): ``format``, ``architecture`` (builtins), ``state_dict``,
``record`` (test accuracy, epochs, seconds, n, settings); readable with ``torch.load(weights_only=True)``.

This module holds the training; the network and forward pass are in ``febm/evaluation/classifier_network.py``,
the files in ``febm/evaluation/classifier_files.py``. Every public name of the three is importable from here.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from febm.evaluation.classifier_files import (
    LabelledData,
    load_classifier,
    load_labelled_data,
    save_classifier,
)
from febm.evaluation.classifier_network import (
    CLASSIFIER_FORMAT,
    ClassifierArchitecture,
    ClassifierError,
    SmallCNN,
    _as_nchw,
    _to_input,
    accuracy,
    features,
)

__all__ = [
    "CLASSIFIER_FORMAT",
    "ClassifierArchitecture",
    "ClassifierError",
    "ClassifierSettings",
    "LabelledData",
    "SmallCNN",
    "accuracy",
    "features",
    "load_classifier",
    "load_labelled_data",
    "save_classifier",
    "train_classifier",
]


@dataclass(frozen=True)
class ClassifierSettings:
    """Defaults live in the config schema (``evaluation.classifier``); these mirror them for direct use."""

    epochs: int = 3
    batch_size: int = 128
    lr: float = 0.002
    weight_decay: float = 0.0001
    width: int = 32
    feature_dim: int = 128
    seed: int = 0
    eval_batch_size: int = 1000

    @classmethod
    def from_config(cls, section: Mapping[str, Any]) -> ClassifierSettings:
        known = set(cls.__dataclass_fields__)
        return cls(**{key: value for key, value in section.items() if key in known})


def _check_training_data(images: np.ndarray, labels: np.ndarray, split: str, num_classes: int) -> None:
    labels = np.asarray(labels)
    if labels.shape != (len(images),):
        raise ClassifierError(
            f"{split} split: {len(images)} images but labels of shape {labels.shape}; they must match"
        )
    if len(labels) == 0:
        raise ClassifierError(f"{split} split has no images")
    if labels.min() < 0 or labels.max() >= num_classes:
        raise ClassifierError(
            f"{split} split: labels span {labels.min()}..{labels.max()}, expected 0..{num_classes - 1} "
            "(a classifier needs a labelled dataset such as fashion_mnist or cifar10)"
        )


def train_classifier(
    train_images: np.ndarray,
    train_labels: np.ndarray,
    test_images: np.ndarray,
    test_labels: np.ndarray,
    settings: ClassifierSettings | Mapping[str, Any] | None = None,
    progress: bool = True,
    device: torch.device | str = "cpu",
    num_classes: int = 10,
) -> tuple[SmallCNN, dict[str, Any]]:
    """Train on the train split, measure on the test split; returns (frozen model in eval mode, record)."""
    if settings is None:
        settings = ClassifierSettings()
    elif not isinstance(settings, ClassifierSettings):
        settings = ClassifierSettings.from_config(settings)
    started = time.time()
    if train_images.ndim != 4 or test_images.ndim != 4:
        raise ClassifierError(
            f"images must be uint8 (N, S, S, C), got train {train_images.shape}, test {test_images.shape}"
        )
    architecture = ClassifierArchitecture(
        image_channels=int(train_images.shape[3]),
        image_size=int(train_images.shape[1]),
        num_classes=num_classes,
        width=settings.width,
        feature_dim=settings.feature_dim,
    )
    train_nchw = _as_nchw(train_images, architecture, "train split")
    _as_nchw(test_images, architecture, "test split")
    _check_training_data(train_images, train_labels, "train", num_classes)
    _check_training_data(test_images, test_labels, "test", num_classes)
    device = torch.device(device)
    # Seeded weight initialisation and dropout masks, without moving the caller's global generators.
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(settings.seed)
        model, record = _fit(
            architecture, train_nchw, train_labels, test_images, test_labels, settings, progress, device
        )
    record["seconds"] = round(time.time() - started, 3)
    return model, record


def _fit(
    architecture: ClassifierArchitecture,
    train_nchw: np.ndarray,
    train_labels: np.ndarray,
    test_images: np.ndarray,
    test_labels: np.ndarray,
    settings: ClassifierSettings,
    progress: bool,
    device: torch.device,
) -> tuple[SmallCNN, dict[str, Any]]:
    model = SmallCNN(architecture).to(device, memory_format=torch.channels_last)
    generator = torch.Generator().manual_seed(settings.seed)  # batch order, on the CPU for any device
    optimiser = torch.optim.AdamW(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    steps_per_epoch = math.ceil(len(train_nchw) / settings.batch_size)
    total_steps = settings.epochs * steps_per_epoch
    # Cosine decay to zero over the run: the last steps take small steps without a tuned schedule.
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda step: 0.5 * (1 + math.cos(math.pi * min(step, total_steps) / total_steps))
    )
    labels = torch.from_numpy(np.asarray(train_labels, dtype=np.int64))
    loss_function = nn.CrossEntropyLoss()
    epoch_accuracy = []
    model.train()
    with tqdm(total=total_steps, desc="classifier", unit="step", disable=not progress) as bar:
        for _ in range(settings.epochs):
            order = torch.randperm(len(train_nchw), generator=generator).numpy()
            for start in range(0, len(order), settings.batch_size):
                chosen = np.sort(order[start : start + settings.batch_size])
                _, logits = model(_to_input(train_nchw[chosen], device))
                loss = loss_function(logits, labels[chosen].to(device))
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                optimiser.step()
                schedule.step()
                bar.update(1)
                bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
            epoch_accuracy.append(accuracy(model, test_images, test_labels, settings.eval_batch_size))
            model.train()
    model.eval()
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    record = {
        "test_accuracy": epoch_accuracy[-1],
        "test_accuracy_per_epoch": epoch_accuracy,
        "epochs": settings.epochs,
        "steps": total_steps,
        "n": len(train_nchw),
        "n_test": len(test_images),
        "settings": asdict(settings),
        "architecture": architecture.to_dict(),
        "device": str(device),
        "threads": torch.get_num_threads(),
    }
    return model, record
