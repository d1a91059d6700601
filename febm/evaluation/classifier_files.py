"""The classifier's files: ``save_classifier`` / ``load_classifier`` (``resources/classifier/<dataset>.pt``:
``format``, ``architecture`` (builtins), ``state_dict``, ``record``; readable with ``torch.load(weights_only=True)``)
and ``load_labelled_data``, both labelled splits of a prepared cache. The network is in
``febm/evaluation/classifier_network.py``, its training in ``febm/evaluation/classifier.py``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from febm.evaluation.classifier_network import (
    CLASSIFIER_FORMAT,
    ClassifierArchitecture,
    ClassifierError,
    SmallCNN,
)
from febm.io import save_torch_atomic


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
