"""Image data: raw CIFAR-10 / CelebA files -> one cached uint8 ``.npz`` -> dequantised training batches.

Raw layouts (the ones torchvision uses; CelebA's reader is ``febm/images/celeba.py``):

* CIFAR-10: ``ROOT/cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta}``, Python pickles
  (``encoding="latin1"``) holding ``data`` (N x 3072 uint8, R, G, B planes of 32x32) and ``labels``.
  Every file is md5-checked against torchvision's published sums, unless the config marks the run as
  stand-in data.
* CelebA: ``ROOT/celeba/img_align_celeba/*.jpg`` (torchvision) or ``ROOT/img_align_celeba/*.jpg``
  (a plain folder), optionally with ``list_eval_partition.txt`` beside the image folder.
  Preprocessing: centre crop ``crop_size`` x ``crop_size`` (140, the NCSN convention; the original EBM
  code resized the whole 178x218 image, distorting it), then resize to 32x32 with PIL's bilinear
  filter (which antialiases when shrinking), stored as uint8.

Cache file (``resources/data/{dataset}.npz``): ``images`` uint8 (N, 32, 32, 3), ``labels`` int64 (N,)
(CelebA: zeros), ``num_classes`` (10 or 0), ``standin`` (bool), ``source`` (text); CIFAR-10 also
``test_images``/``test_labels`` (the original FID reference used train + test).

Training pixels are dequantised as the original: x = (k + U(0, 1)) / 256 in [0, 1).
"""

from __future__ import annotations

import functools
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from febm.errors import FebmError
from febm.io import atomic_path, file_digest

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_ARCHIVE_MD5 = "c58f30108f718f92721af3b95e74349a"
CIFAR10_FOLDER = "cifar-10-batches-py"
CIFAR10_TRAIN_FILES = {
    "data_batch_1": "c99cafc152244af753f735de768cd75f",
    "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
    "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
    "data_batch_4": "634d18415352ddfa80567beed471001a",
    "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
}
CIFAR10_TEST_FILES = {"test_batch": "40351d587109b95175f43aff81a1287e"}
CIFAR10_CLASSES = 10
IMAGE_SIZE = 32
STANDIN_MARKER = "FEBM_STANDIN"
DATASETS = ("cifar10", "celeba32", "fashion_mnist")


class DataError(FebmError):
    """Raw or cached image data that is missing, corrupted or of the wrong kind."""


def md5sum(path: Path) -> str:
    return file_digest(path, "md5")


# --- CIFAR-10 -----------------------------------------------------------------------------------


def cifar10_missing_message(root: Path, reason: str) -> str:
    return (
        f"CIFAR-10 is not available under {str(root)!r} ({reason}). Download {CIFAR10_URL} "
        f"(md5 {CIFAR10_ARCHIVE_MD5}) and extract it there, so that "
        f"{root / CIFAR10_FOLDER!s}/data_batch_1 ... data_batch_5, test_batch exist; then rerun"
    )


# What a CIFAR-10 batch (dicts, lists, strings and numpy arrays, pickled by Python 2 or 3) refers to.
_CIFAR10_PICKLE_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
}


class _ArraysOnlyUnpickler(pickle.Unpickler):
    """Refuses every other global, so that a tampered pickle cannot run code (stand-ins skip the md5)."""

    def find_class(self, module: str, name: str) -> object:
        if (module, name) not in _CIFAR10_PICKLE_GLOBALS:
            raise pickle.UnpicklingError(f"refusing {module}.{name}: not part of a CIFAR-10 batch")
        return super().find_class(module, name)


def read_cifar10_batch(path: Path, expected_md5: str | None) -> tuple[np.ndarray, np.ndarray]:
    """One pickle -> (images uint8 (N, 32, 32, 3), labels int64 (N,)); clear errors for bad files."""
    if not path.is_file():
        raise DataError(f"CIFAR-10 file {str(path)!r} is missing")
    if expected_md5 is not None and md5sum(path) != expected_md5:
        raise DataError(
            f"CIFAR-10 file {str(path)!r} fails its md5 check (expected {expected_md5}): it is corrupted or "
            "incomplete; delete the cifar-10-batches-py folder and download again (if these are stand-ins "
            "from `febm make-standins`, set images.standin_data: true, smoke preset only)"
        )
    try:
        with path.open("rb") as handle:
            entry = _ArraysOnlyUnpickler(handle, encoding="latin1").load()
    except Exception as error:  # pickle raises EOFError, UnpicklingError, ValueError, ...
        raise DataError(
            f"CIFAR-10 file {str(path)!r} cannot be unpickled ({type(error).__name__}): it is truncated or "
            "corrupted; delete it and download/extract CIFAR-10 again"
        ) from None
    try:
        data = np.asarray(entry["data"], dtype=np.uint8)
        labels = np.asarray(entry["labels"] if "labels" in entry else entry["fine_labels"], dtype=np.int64)
    except (KeyError, TypeError, ValueError) as error:
        raise DataError(
            f"CIFAR-10 file {str(path)!r} is not a CIFAR-10 batch (no usable 'data'/'labels': {error})"
        ) from None
    if data.ndim != 2 or data.shape[1] != 3 * IMAGE_SIZE * IMAGE_SIZE or data.shape[0] != labels.shape[0]:
        raise DataError(
            f"CIFAR-10 file {str(path)!r} has data of shape {data.shape} and {labels.shape[0]} labels; "
            "expected (N, 3072) and N labels"
        )
    if labels.size and (labels.min() < 0 or labels.max() >= CIFAR10_CLASSES):
        raise DataError(f"CIFAR-10 file {str(path)!r} has labels outside 0..9")
    images = data.reshape(-1, 3, IMAGE_SIZE, IMAGE_SIZE).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), labels


def load_cifar10(root: Path, *, verify_md5: bool) -> dict[str, np.ndarray]:
    folder = root / CIFAR10_FOLDER
    if not folder.is_dir():
        raise DataError(cifar10_missing_message(root, f"no folder {CIFAR10_FOLDER}"))
    splits = {}
    for split, files in (("train", CIFAR10_TRAIN_FILES), ("test", CIFAR10_TEST_FILES)):
        parts = [
            read_cifar10_batch(folder / name, md5 if verify_md5 else None) for name, md5 in files.items()
        ]
        splits[f"{split}_images"] = np.concatenate([images for images, _ in parts])
        splits[f"{split}_labels"] = np.concatenate([labels for _, labels in parts])
    return splits


def download_cifar10(root: Path) -> None:
    """torchvision's download + md5 + extract; raises DataError with the manual instructions."""
    import socket

    from torchvision.datasets.utils import download_and_extract_archive

    previous_timeout = socket.getdefaulttimeout()
    socket.setdefaulttimeout(60)  # a firewalled compute node should fail, not hang
    try:
        download_and_extract_archive(
            CIFAR10_URL, str(root), filename="cifar-10-python.tar.gz", md5=CIFAR10_ARCHIVE_MD5
        )
    except Exception as error:
        raise DataError(
            cifar10_missing_message(root, f"download failed: {type(error).__name__}: {error}")
        ) from None
    finally:
        socket.setdefaulttimeout(previous_timeout)


# --- the cache ----------------------------------------------------------------------------------


def write_cache(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Uncompressed npz (fast to load), written atomically."""
    with atomic_path(path) as tmp, tmp.open("wb") as handle:
        np.savez(handle, **arrays)


@dataclass
class ImageData:
    """Training images as uint8 NCHW on a device plus labels; ``batch`` yields dequantised floats."""

    images: torch.Tensor  # uint8 (N, C, 32, 32), C = 3 or 1
    labels: torch.Tensor  # int64 (N,)
    num_classes: int
    standin: bool
    dataset: str

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def to(self, device: torch.device | str) -> ImageData:
        return ImageData(
            self.images.to(device), self.labels.to(device), self.num_classes, self.standin, self.dataset
        )


# Every reader of a prepared .npz names the command that makes it.
PREPARED_DATA_HINT = (
    "make it with `febm prepare-data --config C --dataset DS --root resources/data --out PATH`"
)


def load_cache(path: str | Path, *, max_images: int = 0) -> ImageData:
    """Read a prepared ``.npz``; errors name the command that makes it."""
    path = Path(path)
    hint = PREPARED_DATA_HINT
    if not path.is_file():
        raise DataError(f"prepared data {str(path)!r} does not exist; {hint}")
    try:
        with np.load(path, allow_pickle=False) as archive:
            images = archive["images"]
            labels = archive["labels"]
            num_classes = int(archive["num_classes"])
            standin = bool(archive["standin"])
            dataset = str(archive["dataset"])
    except Exception as error:
        raise DataError(
            f"prepared data {str(path)!r} cannot be read ({type(error).__name__}: {error}); delete it and {hint}"
        ) from None
    if (
        images.dtype != np.uint8
        or images.ndim != 4
        or images.shape[3] not in (1, 3)
        or images.shape[0] != labels.shape[0]
    ):
        raise DataError(
            f"prepared data {str(path)!r} has images {images.shape} {images.dtype}; "
            "expected (N, H, W, C) uint8 with C = 3 (colour) or 1 (greyscale)"
        )
    if max_images:
        images, labels = images[:max_images], labels[:max_images]
    tensor = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))
    return ImageData(tensor, torch.from_numpy(labels.astype(np.int64)), num_classes, standin, dataset)


def dequantise(pixels: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """uint8 k -> (k + U(0, 1)) / 256, the original's k/255 * 255/256 + U(0, 1/256)."""
    jitter = torch.rand(pixels.shape, generator=generator, device=pixels.device)
    return (pixels.float() + jitter) / 256.0


@functools.lru_cache(maxsize=2)
def epoch_order(num_images: int, seed: int, rank: int, epoch: int) -> torch.Tensor:
    """The shuffled order of one epoch: a function of (seed, rank, epoch) only, so a resumed run
    reads the same batches without saving a data-loader state. Each rank shuffles the full set (as
    the original's per-rank loaders did)."""
    generator = torch.Generator().manual_seed(((seed * 1_000_003 + rank) * 1_000_003 + epoch) % (2**63))
    return torch.randperm(num_images, generator=generator)


def batch_indices(num_images: int, batch_size: int, iteration: int, seed: int, rank: int) -> torch.Tensor:
    """Indices of the batch read at ``iteration`` (epochs drop the last incomplete batch)."""
    per_epoch = num_images // batch_size
    if per_epoch == 0:
        raise DataError(f"the dataset has {num_images} images, fewer than one batch of {batch_size}")
    epoch, position = divmod(iteration, per_epoch)
    return epoch_order(num_images, seed, rank, epoch)[position * batch_size : (position + 1) * batch_size]
