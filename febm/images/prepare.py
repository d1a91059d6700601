"""``febm prepare-data``: raw dataset files -> the cached uint8 ``.npz`` training reads.

Stand-in data (made by ``febm make-standins``, marked by a ``FEBM_STANDIN`` file) is accepted only when
the config says ``images.standin_data: true``; then the CIFAR-10 md5 and Fashion-MNIST SHA-256 checks
are skipped (stand-ins cannot match them) and the cache records ``standin = True``, which every result
then reports. Fashion-MNIST lives in febm/images/fashion_mnist.py (where it looks, what it checks).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

from febm.images import celeba
from febm.images import data as raw
from febm.images.data import DataError
from febm.images.fashion_mnist import fashion_mnist_arrays


def prepare_data(config: dict[str, Any], dataset: str, root: Path, out: Path) -> dict[str, Any]:
    """Build the cache; returns a short summary (counts, shapes, standin flag)."""
    images_config = config["images"]
    standin = bool(images_config["standin_data"])
    if (root / raw.STANDIN_MARKER).exists() and not standin:
        raise DataError(
            f"{str(root)!r} holds stand-in data (file {raw.STANDIN_MARKER}) but images.standin_data is false; "
            "point --root at the real data, or use the smoke preset for stand-ins"
        )
    if dataset == "cifar10":
        arrays = _cifar10(root, standin=standin, download=images_config["download"])
    elif dataset == "celeba32":
        arrays = _celeba32(root, images_config, standin=standin)
    elif dataset == "fashion_mnist":
        arrays = fashion_mnist_arrays(root, standin=standin, download=images_config["download"])
    else:
        raise DataError(f"unknown dataset {dataset!r}; choose one of {', '.join(raw.DATASETS)}")
    arrays["standin"] = np.array(standin)
    arrays["dataset"] = np.array(dataset)
    raw.write_cache(out, arrays)
    return {
        "dataset": dataset,
        "out": str(out),
        "train_images": int(arrays["images"].shape[0]),
        "image_shape": list(arrays["images"].shape[1:]),
        "num_classes": int(arrays["num_classes"]),
        "standin": standin,
    }


def _cifar10(root: Path, *, standin: bool, download: bool) -> dict[str, np.ndarray]:
    if not (root / raw.CIFAR10_FOLDER).is_dir():
        if standin:
            raise DataError(
                raw.cifar10_missing_message(
                    root, "no stand-ins there; run `febm make-standins --kind cifar10`"
                )
            )
        if not download:
            raise DataError(raw.cifar10_missing_message(root, "images.download is false"))
        raw.download_cifar10(root)
    splits = raw.load_cifar10(root, verify_md5=not standin)
    return {
        "images": splits["train_images"],
        "labels": splits["train_labels"],
        "test_images": splits["test_images"],
        "test_labels": splits["test_labels"],
        "num_classes": np.array(raw.CIFAR10_CLASSES),
        "source": np.array(f"CIFAR-10 python pickles under {root}"),
    }


def _celeba32(root: Path, images_config: dict[str, Any], *, standin: bool) -> dict[str, np.ndarray]:
    settings = images_config["celeba32"]
    try:
        celeba.find_celeba_folder(root)
    except DataError:
        if standin or not images_config["download"]:
            raise
        _try_celeba_download(root)
    if not standin:
        _check_partition_md5(root)
    workers = max(1, min(8, (os.cpu_count() or 1)))
    images = celeba.load_celeba(
        root, split=settings["split"], crop_size=settings["crop_size"], workers=workers
    )
    if not standin and settings["split"] == "all" and images.shape[0] != 202_599:
        print(
            f"febm prepare-data: warning: found {images.shape[0]} CelebA images, the full set has 202,599",
            file=sys.stderr,
        )
    crop = f"centre crop {settings['crop_size']}" if settings["crop_size"] else "no crop"
    return {
        "images": images,
        "labels": np.zeros(images.shape[0], dtype=np.int64),
        "num_classes": np.array(0),
        "source": np.array(
            f"CelebA img_align_celeba under {root}, split {settings['split']}, {crop}, bilinear 32x32"
        ),
    }


def _try_celeba_download(root: Path) -> None:
    """torchvision's Google Drive download (needs gdown); any failure gives the manual instructions."""
    try:
        from torchvision.datasets import CelebA

        CelebA(str(root), split="all", target_type=[], download=True)
    except Exception as error:
        raise DataError(
            celeba.celeba_missing_message(
                root, f"download failed: {type(error).__name__}: {str(error)[:200]}"
            )
        ) from None


def _check_partition_md5(root: Path) -> None:
    for partition in (root / "celeba" / "list_eval_partition.txt", root / "list_eval_partition.txt"):
        if partition.is_file() and raw.md5sum(partition) != celeba.CELEBA_PARTITION_MD5:
            raise DataError(
                f"{str(partition)!r} fails its md5 check (expected {celeba.CELEBA_PARTITION_MD5}); "
                "download CelebA's list_eval_partition.txt again"
            )
