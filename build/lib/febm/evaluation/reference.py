"""Reference statistics: Inception pool3 mean and covariance of a dataset's real images, cached as ``.npz``.

The file holds ``mu`` and ``sigma`` under pytorch-fid's key names (so ``python -m pytorch_fid samples/
stats.npz`` reads it too) plus what every FID must state: the reference set, its size, the
preprocessing and the Inception weights' SHA-256 (samples are only compared with statistics made the
same way), and whether the images or weights were stand-ins.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from febm.errors import FebmError
from febm.io import atomic_path


class ReferenceStatsError(FebmError):
    """Reference data or statistics that are missing, unreadable or inconsistent with the request."""


@dataclass
class ReferenceImages:
    images: np.ndarray  # (N, 32, 32, 3) uint8
    dataset: str
    reference_set: str
    full_size: int  # size of the whole reference set before any subset
    standin_data: bool
    source: str


def select_reference_images(
    data_path: str | Path, dataset: str, reference_set: str, max_images: int, subset_seed: int
) -> ReferenceImages:
    """The configured reference set from a prepared data file (``febm prepare-data``'s ``.npz``).

    Keys read: ``images`` (the training split), ``test_images`` (CIFAR-10's test split), ``standin``,
    ``dataset``, ``source``.
    """
    data_path = Path(data_path)
    if not data_path.is_file():
        raise ReferenceStatsError(
            f"prepared data {str(data_path)!r} does not exist; make it with "
            f"`febm prepare-data --config C --dataset {dataset} --root resources/data --out {data_path}`"
        )
    with np.load(data_path, allow_pickle=False) as archive:
        stored_dataset = str(archive["dataset"]) if "dataset" in archive.files else dataset
        if stored_dataset != dataset:
            raise ReferenceStatsError(f"{str(data_path)!r} holds {stored_dataset!r}, not {dataset!r}")
        parts = {"train": "images", "test": "test_images"}
        arrays = []
        for part in reference_set.split("+"):
            key = parts.get(part)
            if key is None or key not in archive.files:
                raise ReferenceStatsError(
                    f"reference set {reference_set!r} needs {key or part!r} in {str(data_path)!r} "
                    f"(it has {archive.files}); choose evaluation.reference.{dataset}.set accordingly"
                )
            arrays.append(archive[key])
        standin = bool(archive["standin"]) if "standin" in archive.files else False
        source = str(archive["source"]) if "source" in archive.files else str(data_path)
    images = np.concatenate(arrays)
    full_size = len(images)
    if max_images and max_images < full_size:
        chosen = np.random.RandomState(subset_seed).choice(full_size, max_images, replace=False)
        images = images[np.sort(chosen)]
    return ReferenceImages(images, dataset, reference_set, full_size, standin, source)


def save_reference_stats(
    path: str | Path, mu: np.ndarray, sigma: np.ndarray, meta: Mapping[str, Any]
) -> None:
    """``mu``/``sigma`` float64 (pytorch-fid's keys) plus ``meta`` as a JSON string, written atomically."""
    with atomic_path(path) as tmp, tmp.open("wb") as handle:
        np.savez(
            handle, mu=mu, sigma=sigma, meta=np.array(json.dumps(dict(meta), sort_keys=True, default=str))
        )


def load_reference_stats(path: str | Path) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """(mu, sigma, meta); files from pytorch-fid's ``--save-stats`` load too, with empty meta."""
    path = Path(path)
    if not path.is_file():
        raise ReferenceStatsError(
            f"reference statistics {str(path)!r} do not exist; make them with "
            "`febm fid-stats --config C --dataset DS --data resources/data/DS.npz --weights W --out PATH`"
        )
    try:
        with np.load(path, allow_pickle=False) as archive:
            mu, sigma = archive["mu"], archive["sigma"]
            meta = json.loads(str(archive["meta"])) if "meta" in archive.files else {}
    except Exception as error:
        raise ReferenceStatsError(
            f"cannot read reference statistics {str(path)!r} ({type(error).__name__}: {error}); make them again "
            "with `febm fid-stats`"
        ) from None
    if mu.ndim != 1 or sigma.shape != (mu.size, mu.size):
        raise ReferenceStatsError(f"{str(path)!r}: mu {mu.shape} and sigma {sigma.shape} do not match")
    return mu.astype(np.float64), sigma.astype(np.float64), meta
