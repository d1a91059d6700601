"""Stand-in image data in the real on-disk formats, for the smoke preset and the tests.

* ``cifar10``: ``OUT/cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta}``, pickles with
  the real keys and layout (uint8 N x 3072, R/G/B planes; 10 classes). Each class is a distinct
  coloured pattern (so conditioning has something to learn) with noise.
* ``celeba``: ``OUT/celeba/img_align_celeba/000001.jpg ...``, 178x218 JPEGs of a face-like ellipse on
  a background, plus ``list_eval_partition.txt``.
* ``fashion_mnist``: ``OUT/fashion-mnist/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz``, gzipped idx
  files (big-endian header, uint8 28x28 greyscale on a zero background, 10 balanced classes), each class
  a distinct silhouette with noise.

A ``FEBM_STANDIN`` marker file is written at OUT, so ``prepare-data`` can refuse stand-ins unless the
config says ``images.standin_data: true``. None of this is science; it only exercises the real code.
"""

from __future__ import annotations

import gzip
import pickle
from pathlib import Path

import numpy as np

from febm.images.data import (
    CIFAR10_FOLDER,
    CIFAR10_TEST_FILES,
    CIFAR10_TRAIN_FILES,
    IMAGE_SIZE,
    STANDIN_MARKER,
    DataError,
)
from febm.images.fashion_mnist import (
    FASHION_MNIST_CLASSES,
    FASHION_MNIST_FILES,
    RAW_SIZE,
    ROOT_FOLDER,
    encode_idx,
)
from febm.io import write_bytes_atomic, write_text_atomic

CIFAR10_LABEL_NAMES = [
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
]  # fmt: skip
CELEBA_SIZE = (178, 218)  # width, height of the aligned faces


def _class_pattern(label: int) -> np.ndarray:
    """A 32x32x3 float pattern in [0, 1] that differs by class: colour plus stripe orientation."""
    rows, cols = np.mgrid[0:IMAGE_SIZE, 0:IMAGE_SIZE] / IMAGE_SIZE
    hue = np.array([(label * 0.37) % 1.0, (label * 0.61 + 0.2) % 1.0, (label * 0.83 + 0.5) % 1.0])
    angle = np.pi * label / 10
    stripes = 0.5 + 0.5 * np.sin(2 * np.pi * 3 * (np.cos(angle) * rows + np.sin(angle) * cols))
    return 0.25 + 0.5 * hue[None, None, :] * stripes[:, :, None]


def standin_cifar10_arrays(count: int, rng: np.random.Generator) -> tuple[np.ndarray, list[int]]:
    labels = [int(label) for label in rng.integers(0, 10, size=count)]
    images = np.stack([_class_pattern(label) for label in labels])
    images = np.clip(images + rng.normal(0, 0.05, size=images.shape), 0, 1)
    pixels = (images * 255).round().astype(np.uint8)  # (N, 32, 32, 3)
    rows = pixels.transpose(0, 3, 1, 2).reshape(count, -1)  # R plane, G plane, B plane
    return rows, labels


def make_cifar10_standins(out: Path, per_batch: int = 20, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    folder = out / CIFAR10_FOLDER
    for index, name in enumerate([*CIFAR10_TRAIN_FILES, *CIFAR10_TEST_FILES]):
        data, labels = standin_cifar10_arrays(per_batch, rng)
        entry = {
            "batch_label": f"stand-in batch {index + 1}",
            "labels": labels,
            "data": data,
            "filenames": [f"standin_{index}_{i}.png" for i in range(per_batch)],
        }
        write_bytes_atomic(folder / name, pickle.dumps(entry, protocol=2))
    meta = {"num_cases_per_batch": per_batch, "label_names": CIFAR10_LABEL_NAMES, "num_vis": 3072}
    write_bytes_atomic(folder / "batches.meta", pickle.dumps(meta, protocol=2))
    write_text_atomic(out / STANDIN_MARKER, "stand-in data made by `febm make-standins`; not for results\n")
    return folder


def _face(rng: np.random.Generator) -> np.ndarray:
    width, height = CELEBA_SIZE
    rows, cols = np.mgrid[0:height, 0:width]
    background = rng.uniform(0.1, 0.9, size=3)
    skin = np.array([0.85, 0.65, 0.5]) * rng.uniform(0.7, 1.1)
    centre_y, centre_x = height * 0.55 + rng.normal(0, 4), width * 0.5 + rng.normal(0, 4)
    inside = ((rows - centre_y) / 62) ** 2 + ((cols - centre_x) / 48) ** 2 <= 1
    image = np.where(inside[:, :, None], skin, background)
    for eye_x in (centre_x - 18, centre_x + 18):
        eye = ((rows - (centre_y - 12)) / 5) ** 2 + ((cols - eye_x) / 8) ** 2 <= 1
        image[eye] = 0.1
    return np.clip(image + rng.normal(0, 0.03, size=image.shape), 0, 1)


def make_celeba_standins(out: Path, count: int = 24, seed: int = 0) -> Path:
    from PIL import Image

    from febm.io import atomic_path

    rng = np.random.default_rng(seed)
    folder = out / "celeba" / "img_align_celeba"
    partition_lines = []
    for index in range(1, count + 1):
        name = f"{index:06d}.jpg"
        pixels = (_face(rng) * 255).round().astype(np.uint8)
        with atomic_path(folder / name) as tmp:
            Image.fromarray(pixels).save(tmp, format="JPEG", quality=90)
        partition_lines.append(f"{name} {0 if index <= count * 0.8 else (1 if index <= count * 0.9 else 2)}")
    write_text_atomic(out / "celeba" / "list_eval_partition.txt", "\n".join(partition_lines) + "\n")
    write_text_atomic(out / STANDIN_MARKER, "stand-in data made by `febm make-standins`; not for results\n")
    return folder


def _silhouette(label: int) -> np.ndarray:
    """A 28x28 mask in {0, 1} that differs by class: a box whose width, height and notch vary."""
    rows, cols = np.mgrid[0:RAW_SIZE, 0:RAW_SIZE]
    half_width = 4 + label  # 4..13 pixels
    half_height = 13 - label // 2  # 13..9 pixels
    box = (np.abs(cols - 13.5) <= half_width) & (np.abs(rows - 13.5) <= half_height)
    notch = (np.abs(cols - 13.5) <= label // 3) & (rows > 13.5 + half_height - 2 * (label % 3) - 2)
    return (box & ~notch).astype(np.float64)


def standin_fashion_mnist_arrays(count: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``count`` (a multiple of 10) balanced, shuffled images uint8 (count, 28, 28) and labels uint8."""
    labels = rng.permutation(np.arange(count) % FASHION_MNIST_CLASSES).astype(np.uint8)
    brightness = rng.uniform(0.5, 1.0, size=(count, 1, 1))
    masks = np.stack([_silhouette(int(label)) for label in labels])
    images = np.clip(masks * brightness + masks * rng.normal(0, 0.05, size=masks.shape), 0, 1)
    return (images * 255).round().astype(np.uint8), labels


def make_fashion_mnist_standins(
    out: Path, train_count: int = 100, test_count: int = 20, seed: int = 0
) -> Path:
    """The four gzipped idx files under OUT/fashion-mnist (balanced: counts must be multiples of 10)."""
    for count in (train_count, test_count):
        if count <= 0 or count % FASHION_MNIST_CLASSES:
            raise DataError(
                f"Fashion-MNIST stand-ins need a positive multiple of {FASHION_MNIST_CLASSES} images per split "
                f"(balanced classes), not {count}; pass e.g. --count 100"
            )
    rng = np.random.default_rng(seed)
    folder = out / ROOT_FOLDER
    for split, count in (("train", train_count), ("test", test_count)):
        images, labels = standin_fashion_mnist_arrays(count, rng)
        for key, array in ((f"{split}_images", images), (f"{split}_labels", labels)):
            name = FASHION_MNIST_FILES[key][0]
            # mtime=0: the same seed gives the same bytes
            write_bytes_atomic(folder / f"{name}.gz", gzip.compress(encode_idx(array), mtime=0))
    write_text_atomic(out / STANDIN_MARKER, "stand-in data made by `febm make-standins`; not for results\n")
    return folder
