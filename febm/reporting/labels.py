"""Scale labels: every number below paper scale or from stand-in data says so, next to the number.

Labels come from two places and are merged: each run's metrics.json (``preset``, ``scale``,
``standin_data``, written by the stage that produced it) and the resolved config (the preset and
``images.standin_data``), so a number is labelled even if a metrics file is silent about its scale.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from febm.reporting.errors import ReportInputError
from febm.runspec import TOY_DATASET

TOY = "toy"
# Image datasets, each its own study: the paper's two (Tables 1-2, scored with Inception) and the
# offline Fashion-MNIST study (scored by a classifier the workflow trains, results/tables/fashion_mnist.csv).
IMAGE_STUDIES = ("cifar10", "celeba32", "fashion_mnist")
STUDIES = (TOY, *IMAGE_STUDIES)


def study_of_record(record: Mapping[str, Any]) -> str | None:
    """The report study a result record belongs to, from the identity it records (``study`` of a toy run,
    ``dataset`` of an image run or score file); None if it states neither. Never from the file's path."""
    if record.get("study") == TOY or record.get("dataset") == TOY_DATASET:
        return TOY
    dataset = record.get("dataset")
    return dataset if dataset in IMAGE_STUDIES else None


def labels_of_record(record: Mapping[str, Any]) -> list[str]:
    labels = []
    if record.get("standin_data"):
        labels.append("stand-in data")
    if record.get("standin_weights"):
        labels.append("stand-in Inception weights")
    scale = record.get("scale")
    if isinstance(scale, str) and scale and scale != "paper":
        labels.append(scale if scale.startswith("reduced") else f"reduced: {scale}")
    preset = record.get("preset")
    if isinstance(preset, str) and preset != "paper":
        labels.append(f"{preset} preset")
    return labels


def badge_text(labels: Iterable[str]) -> str:
    """The short per-number marker; the full labels go in its tooltip and the table's banner."""
    return "stand-in" if any(label.startswith("stand-in") for label in labels) else "reduced"


def config_labels(config: Mapping[str, Any], study: str) -> list[str]:
    record: dict[str, Any] = {"preset": config.get("preset", "paper")}
    if study != TOY:
        record["standin_data"] = config.get("images", {}).get("standin_data", False)
    return labels_of_record(record)


def read_metrics(path: str | Path) -> dict[str, Any]:
    try:
        with open(path) as handle:
            data = json.load(handle)
    except FileNotFoundError:
        raise ReportInputError(f"metrics file {str(path)!r} does not exist") from None
    except json.JSONDecodeError as error:
        raise ReportInputError(f"metrics file {str(path)!r} is not valid JSON: {error}") from None
    if not isinstance(data, dict):
        raise ReportInputError(f"metrics file {str(path)!r} must hold a JSON object")
    return data


def merge_labels(*label_lists: Iterable[str]) -> list[str]:
    merged: list[str] = []
    for labels in label_lists:
        for label in labels:
            if label not in merged:
                merged.append(label)
    return merged


def study_labels(config: Mapping[str, Any], metrics_paths: Iterable[str | Path]) -> dict[str, list[str]]:
    """Labels per study (toy and each image dataset) from the config and every metrics file."""
    labels = {study: config_labels(config, study) for study in STUDIES}
    for path in metrics_paths:
        record = read_metrics(path)
        study = study_of_record(record)
        if study is None:
            # Silently skipping it would drop its labels (a stand-in number would look real).
            raise ReportInputError(
                f"metrics file {str(path)!r} records neither study {TOY!r} nor a dataset the report shows "
                f"({', '.join(IMAGE_STUDIES)}; it records dataset {record.get('dataset')!r}): written by an "
                "older febm? rerun the stage that wrote it"
            )
        labels[study] = merge_labels(labels[study], labels_of_record(record))
    return labels
