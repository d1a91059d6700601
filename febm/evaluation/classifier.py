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
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from tqdm import tqdm

from febm.errors import FebmError
from febm.io import save_torch_atomic

CLASSIFIER_FORMAT = "febm-classifier/1"


class ClassifierError(FebmError):
    """A classifier file that is missing, of the wrong kind or shape, or images it cannot read."""


@dataclass(frozen=True)
class ClassifierArchitecture:
    """Everything needed to rebuild the network; stored next to its weights."""

    image_channels: int = 1
    image_size: int = 32
    num_classes: int = 10
    width: int = 32  # channels of the first conv block; the second has 2 x width
    feature_dim: int = 128

    def to_dict(self) -> dict[str, int]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ClassifierArchitecture:
        return cls(**{key: int(data[key]) for key in cls.__dataclass_fields__})


def _conv_block(in_channels: int, out_channels: int) -> nn.Sequential:
    # Pooling before normalisation and ReLU runs those on a quarter of the pixels: measured 1.4x
    # faster training steps on a CPU (channels-last, one thread).
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
        nn.MaxPool2d(2),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class SmallCNN(nn.Module):
    """forward(x float (B, C, S, S) in [0, 1]) -> (penultimate features (B, feature_dim), logits (B, classes))."""

    def __init__(self, architecture: ClassifierArchitecture) -> None:
        super().__init__()
        self.architecture = architecture
        width = architecture.width
        if architecture.image_size % 4:
            raise ValueError(f"image_size must be a multiple of 4, got {architecture.image_size}")
        self.blocks = nn.Sequential(
            _conv_block(architecture.image_channels, width), _conv_block(width, 2 * width)
        )
        pooled = 2 * width * (architecture.image_size // 4) ** 2
        self.feature_layer = nn.Sequential(
            nn.Flatten(), nn.Linear(pooled, architecture.feature_dim), nn.ReLU(inplace=True)
        )
        self.dropout = nn.Dropout(0.3)
        self.head = nn.Linear(architecture.feature_dim, architecture.num_classes)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        features = self.feature_layer(self.blocks(x))
        return features, self.head(self.dropout(features))


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


def _device_of(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def _as_nchw(images: np.ndarray, architecture: ClassifierArchitecture, what: str) -> np.ndarray:
    """uint8 (N, S, S, C) -> (N, C, S, S), with a one-line error for anything else."""
    expected = (architecture.image_size, architecture.image_size, architecture.image_channels)
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8:
        dtype = getattr(images, "dtype", type(images).__name__)
        raise ClassifierError(f"{what}: images must be a uint8 array, got {dtype}")
    if images.ndim != 4 or images.shape[1:] != expected:
        raise ClassifierError(
            f"{what}: images of shape {images.shape}, but the classifier reads (N, {expected[0]}, "
            f"{expected[1]}, {expected[2]}) uint8; score samples of a model of the classifier's dataset"
        )
    return images.transpose(0, 3, 1, 2)


def _to_input(batch: np.ndarray, device: torch.device) -> Tensor:
    pixels = torch.from_numpy(np.ascontiguousarray(batch)).to(device).float().div_(255.0)
    # channels-last convolutions: about 1.5x faster on a CPU (and on recent GPUs)
    return pixels.contiguous(memory_format=torch.channels_last)


def features(
    model: SmallCNN, images: np.ndarray, batch_size: int = 1000, progress: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """(penultimate features (N, feature_dim) float64, logits (N, classes) float64) of uint8 NHWC images."""
    nchw = _as_nchw(images, model.architecture, "classifier features")
    device = _device_of(model)
    was_training = model.training
    model.eval()
    feature_batches, logit_batches = [], []
    try:
        with torch.inference_mode():
            starts = range(0, len(nchw), batch_size)
            for start in tqdm(starts, desc="classifier", unit="batch", disable=not progress, leave=False):
                batch_features, batch_logits = model(_to_input(nchw[start : start + batch_size], device))
                feature_batches.append(batch_features.double().cpu().numpy())
                logit_batches.append(batch_logits.double().cpu().numpy())
    finally:
        model.train(was_training)
    dim, classes = model.architecture.feature_dim, model.architecture.num_classes
    if not feature_batches:
        return np.empty((0, dim)), np.empty((0, classes))
    return np.concatenate(feature_batches), np.concatenate(logit_batches)


def accuracy(model: SmallCNN, images: np.ndarray, labels: np.ndarray, batch_size: int = 1000) -> float:
    _, logits = features(model, images, batch_size)
    return float((logits.argmax(axis=1) == np.asarray(labels)).mean())


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


def save_classifier(path: str | Path, model: SmallCNN, record: Mapping[str, Any]) -> None:
    """Write the classifier atomically (builtins and tensors only: ``torch.load(weights_only=True)``)."""
    state = {key: value.detach().cpu().clone() for key, value in model.state_dict().items()}
    save_torch_atomic(
        path,
        {
            "format": CLASSIFIER_FORMAT,
            "architecture": model.architecture.to_dict(),
            "state_dict": state,
            # Through JSON: plain builtins only (provenance's torch version is a str subclass that
            # weights_only loading refuses).
            "record": json.loads(json.dumps(dict(record), default=str)),
        },
    )


def load_classifier(path: str | Path, device: torch.device | str = "cpu") -> tuple[SmallCNN, dict[str, Any]]:
    """(frozen model in eval mode on ``device``, record) from a file of :func:`save_classifier`."""
    path = Path(path)
    fix = "train one with `febm train-classifier`"
    if not path.is_file():
        raise ClassifierError(f"classifier file {str(path)!r} does not exist; {fix}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for a truncated or foreign file
        detail = str(error).splitlines()[0][:160] if str(error) else ""
        raise ClassifierError(
            f"classifier file {str(path)!r} cannot be read ({type(error).__name__}: {detail}); it is "
            f"truncated or not a torch file: {fix}"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != CLASSIFIER_FORMAT:
        raise ClassifierError(
            f"{str(path)!r} is not a febm classifier (expected format {CLASSIFIER_FORMAT!r}); "
            f"pass the .pt written by `febm train-classifier`, or {fix}"
        )
    try:
        model = SmallCNN(ClassifierArchitecture.from_dict(payload["architecture"]))
        model.load_state_dict(payload["state_dict"])
    except (KeyError, TypeError, ValueError, RuntimeError) as error:  # RuntimeError: shape mismatch
        detail = " ".join(line.strip() for line in str(error).splitlines()[:2])[:240]
        raise ClassifierError(
            f"classifier file {str(path)!r} holds weights that do not fit its architecture "
            f"({type(error).__name__}: {detail}); it is damaged or was edited: {fix}"
        ) from None
    model.to(device, memory_format=torch.channels_last).eval()
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    return model, dict(payload.get("record", {}))


@dataclass
class LabelledData:
    """The train and test splits of a prepared cache (``febm prepare-data``), uint8 NHWC."""

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    num_classes: int
    dataset: str | None
    standin: bool
    path: str


def load_labelled_data(path: str | Path) -> LabelledData:
    """Both splits of a prepared ``.npz``; a one-line error when it is missing or has no labelled test split."""
    from febm.images.data import PREPARED_DATA_HINT as hint

    path = Path(path)
    if not path.is_file():
        raise ClassifierError(f"prepared data {str(path)!r} does not exist; {hint}")
    try:
        with np.load(path, allow_pickle=False) as archive:
            names = set(archive.files)
            missing = sorted({"images", "labels", "test_images", "test_labels"} - names)
            if missing:
                raise ClassifierError(
                    f"prepared data {str(path)!r} lacks {', '.join(missing)}; the classifier needs a labelled "
                    f"train and test split (fashion_mnist, cifar10): {hint}"
                )
            data = LabelledData(
                train_images=archive["images"],
                train_labels=archive["labels"].astype(np.int64),
                test_images=archive["test_images"],
                test_labels=archive["test_labels"].astype(np.int64),
                num_classes=int(archive["num_classes"]) if "num_classes" in names else 10,
                dataset=str(archive["dataset"]) if "dataset" in names else None,
                standin=bool(archive["standin"]) if "standin" in names else False,
                path=str(path),
            )
    except ClassifierError:
        raise
    except Exception as error:  # np.load raises many types for a truncated or foreign file
        detail = str(error).splitlines()[0][:160] if str(error) else ""
        raise ClassifierError(
            f"prepared data {str(path)!r} cannot be read ({type(error).__name__}: {detail}); delete it and {hint}"
        ) from None
    if data.num_classes < 2:
        raise ClassifierError(
            f"prepared data {str(path)!r} has {data.num_classes} classes; the classifier needs a labelled dataset"
        )
    return data
