"""Fashion-MNIST (Zalando): idx files -> checked arrays -> the cache ``prepare-data`` writes.

Where the four files ``{train,t10k}-{images-idx3,labels-idx1}-ubyte`` (gzip or uncompressed) are looked
for, in this order; the first folder holding all four is used:

1. the data root: ``ROOT/fashion-mnist/`` (febm's layout; stand-ins go here), then torchvision's
   ``ROOT/FashionMNIST/raw/``;
2. Debian/Ubuntu's package ``dataset-fashion-mnist``: ``/usr/share/datasets/fashion-mnist/`` (real data only);
3. torchvision's download into ``ROOT/FashionMNIST/raw/`` when ``images.download`` is true.

Checks: idx magic (2051 images, 2049 labels) and big-endian dimensions against the file length (a
truncated file is named as such), 28x28 images, as many labels as images, 60,000 train / 10,000 test,
labels in 0..9 with every class equally often (6,000 / 1,000), and a SHA-256 of each file's
*decompressed* bytes. Debian recompressed the ``.gz`` files, so torchvision's md5 of the ``.gz`` does
not match them; the decompressed bytes are the original and identical from both sources. Stand-ins
(``images.standin_data: true``) skip the counts and the checksums, as CIFAR-10's skip their md5.

Cache: 28x28 padded with 2 zero pixels on each side to 32x32 (the energy network halves the size three
times; 0 is Fashion-MNIST's background), uint8 (N, 32, 32, 1); the train split for training, the test
split (``test_images``/``test_labels``) held out for scoring.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import socket
import sys
import zlib
from pathlib import Path

import numpy as np

from febm.images.data import DataError

DEBIAN_FOLDER = Path("/usr/share/datasets/fashion-mnist")
ROOT_FOLDER = "fashion-mnist"
TORCHVISION_FOLDER = Path("FashionMNIST") / "raw"
IDX_IMAGES_MAGIC = 2051  # 0x0803: unsigned bytes, 3 dimensions
IDX_LABELS_MAGIC = 2049  # 0x0801: unsigned bytes, 1 dimension
# File name (without .gz) and SHA-256 of the decompressed bytes, computed from Debian's
# dataset-fashion-mnist 2020 files; torchvision's download decompresses to the same bytes.
FASHION_MNIST_FILES = {
    "train_images": (
        "train-images-idx3-ubyte",
        "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    ),
    "train_labels": (
        "train-labels-idx1-ubyte",
        "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    ),
    "test_images": (
        "t10k-images-idx3-ubyte",
        "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    ),
    "test_labels": (
        "t10k-labels-idx1-ubyte",
        "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    ),
}
SPLIT_SIZES = {"train": 60_000, "test": 10_000}
FASHION_MNIST_CLASSES = 10
RAW_SIZE = 28
PADDING = 2  # 28 + 2 + 2 = 32
DOWNLOAD_TIMEOUT_S = 60


def missing_message(root: Path, reason: str) -> str:
    """The one-line error for absent data: where it looked and the two ways to get the files."""
    return (
        f"Fashion-MNIST is not available ({reason}); looked in {str(root / ROOT_FOLDER)!r}, "
        f"{str(root / TORCHVISION_FOLDER)!r} and {str(DEBIAN_FOLDER)!r}. Get it either way: "
        "`sudo apt-get install dataset-fashion-mnist` (Debian/Ubuntu, works offline), or allow "
        "images.download: true on a machine with internet (torchvision then downloads it into "
        f"{str(root / TORCHVISION_FOLDER)!r}); then rerun"
    )


def _file_in(folder: Path, name: str) -> Path | None:
    """The uncompressed file (faster to read) or else the .gz one."""
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def find_fashion_mnist(root: Path, *, include_system: bool = True) -> dict[str, Path] | None:
    """The four files of the first folder holding all of them; None when no folder holds any.

    A folder holding only some of them is an error rather than a reason to look elsewhere: it is
    an interrupted download or copy the user should know about.
    """
    folders = [root / ROOT_FOLDER, root / TORCHVISION_FOLDER]
    if include_system:
        folders.append(DEBIAN_FOLDER)
    for folder in folders:
        found = {key: _file_in(folder, name) for key, (name, _) in FASHION_MNIST_FILES.items()}
        present = {key: path for key, path in found.items() if path is not None}
        if len(present) == len(FASHION_MNIST_FILES):
            return present
        if present:
            absent = [FASHION_MNIST_FILES[key][0] for key in found if key not in present]
            raise DataError(
                f"the Fashion-MNIST folder {str(folder)!r} lacks {', '.join(absent)} (.gz or uncompressed); "
                "an interrupted copy or download: delete the folder (or complete it) and rerun"
            )
    return None


def read_idx_bytes(path: Path) -> bytes:
    """The file's content, gunzipped when it starts with the gzip magic (whatever its name)."""
    content = path.read_bytes()
    if content[:2] != b"\x1f\x8b":
        return content
    try:
        return gzip.decompress(content)
    except (EOFError, OSError, zlib.error) as error:  # EOFError: the stream ends early
        raise DataError(
            f"Fashion-MNIST file {str(path)!r} cannot be decompressed ({type(error).__name__}: {error}): it is "
            "truncated or corrupted; delete it and reinstall/download the data"
        ) from None


def parse_idx(content: bytes, path: Path, expected_magic: int) -> np.ndarray:
    """An idx file (big-endian int32 magic and dimensions, then unsigned bytes) as a uint8 array."""
    kind = "image" if expected_magic == IDX_IMAGES_MAGIC else "label"
    dimensions = expected_magic & 0xFF
    header_size = 4 * (1 + dimensions)
    magic = int.from_bytes(content[:4], "big") if len(content) >= 4 else None
    if magic != expected_magic:
        raise DataError(
            f"Fashion-MNIST file {str(path)!r} is not an idx {kind} file (magic {magic}, expected "
            f"{expected_magic}); the file is misnamed or corrupted: reinstall/download the data"
        )
    if len(content) < header_size:
        raise DataError(
            f"Fashion-MNIST file {str(path)!r} is truncated ({len(content)} bytes, shorter than its idx "
            "header); delete it and reinstall/download the data"
        )
    shape = tuple(int.from_bytes(content[4 * i : 4 * i + 4], "big") for i in range(1, 1 + dimensions))
    expected_size = header_size + int(np.prod(shape, dtype=np.int64))
    if len(content) < expected_size:
        raise DataError(
            f"Fashion-MNIST file {str(path)!r} is truncated: its header says {shape} ({expected_size:,} bytes) "
            f"but it holds {len(content):,} bytes; delete it and reinstall/download the data"
        )
    if len(content) > expected_size:
        raise DataError(
            f"Fashion-MNIST file {str(path)!r} has {len(content) - expected_size:,} bytes beyond the {shape} "
            "its header declares; it is corrupted: delete it and reinstall/download the data"
        )
    return np.frombuffer(content, dtype=np.uint8, offset=header_size).reshape(shape)


def encode_idx(array: np.ndarray) -> bytes:
    """The inverse of ``parse_idx`` for uint8 arrays (stand-ins and tests)."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = (0x0800 | array.ndim).to_bytes(4, "big")
    header += b"".join(int(size).to_bytes(4, "big") for size in array.shape)
    return header + array.tobytes()


def _checksum_error(path: Path, expected: str, actual: str) -> DataError:
    return DataError(
        f"Fashion-MNIST file {str(path)!r} fails its SHA-256 check of the decompressed content "
        f"(expected {expected[:16]}..., got {actual[:16]}...): it is corrupted or not the original; delete it "
        "and reinstall (`sudo apt-get install --reinstall dataset-fashion-mnist`) or download again (if these "
        "are stand-ins from `febm make-standins`, set images.standin_data: true, smoke preset only)"
    )


def read_split(
    images_path: Path, labels_path: Path, split: str, *, verify: bool
) -> tuple[np.ndarray, np.ndarray]:
    """One split as (images uint8 (N, 28, 28), labels int64 (N,)), every check applied."""
    images_content = read_idx_bytes(images_path)
    labels_content = read_idx_bytes(labels_path)
    images = parse_idx(images_content, images_path, IDX_IMAGES_MAGIC)
    labels = parse_idx(labels_content, labels_path, IDX_LABELS_MAGIC)
    if images.shape[1:] != (RAW_SIZE, RAW_SIZE):
        raise DataError(
            f"Fashion-MNIST file {str(images_path)!r} holds {images.shape[1]}x{images.shape[2]} images, "
            f"expected {RAW_SIZE}x{RAW_SIZE}; it is not Fashion-MNIST: reinstall/download the data"
        )
    if labels.shape[0] != images.shape[0]:
        raise DataError(
            f"the Fashion-MNIST label file {str(labels_path)!r} does not match the image file "
            f"{str(images_path)!r} ({labels.shape[0]:,} labels for {images.shape[0]:,} images); put the "
            f"{split} split's own files side by side (reinstall/download the data)"
        )
    if verify and images.shape[0] != SPLIT_SIZES[split]:
        raise DataError(
            f"Fashion-MNIST file {str(images_path)!r} holds {images.shape[0]:,} {split} images, expected "
            f"{SPLIT_SIZES[split]:,}; reinstall/download the data"
        )
    counts = np.bincount(labels, minlength=FASHION_MNIST_CLASSES)
    if counts.size > FASHION_MNIST_CLASSES:
        raise DataError(
            f"Fashion-MNIST file {str(labels_path)!r} has labels up to {counts.size - 1}, outside 0..9; "
            "it is corrupted or not Fashion-MNIST: reinstall/download the data"
        )
    if (counts != labels.shape[0] // FASHION_MNIST_CLASSES).any() or labels.shape[0] % FASHION_MNIST_CLASSES:
        raise DataError(
            f"Fashion-MNIST file {str(labels_path)!r} is not balanced (per-class counts {counts.tolist()}; "
            f"Fashion-MNIST has {labels.shape[0] // FASHION_MNIST_CLASSES:,} of each of the 10 classes); "
            "it is corrupted or not Fashion-MNIST: reinstall/download the data"
        )
    if verify:
        for path, content, key in (
            (images_path, images_content, f"{split}_images"),
            (labels_path, labels_content, f"{split}_labels"),
        ):
            expected = FASHION_MNIST_FILES[key][1]
            actual = hashlib.sha256(content).hexdigest()
            if actual != expected:
                raise _checksum_error(path, expected, actual)
    return images, labels.astype(np.int64)


def torchvision_download(root: Path) -> None:
    """torchvision's FashionMNIST download (it checks the md5 of each .gz) into ROOT/FashionMNIST/raw."""
    from torchvision.datasets import FashionMNIST

    FashionMNIST(str(root), train=True, download=True)


def download_fashion_mnist(root: Path) -> None:
    """``torchvision_download`` with a timeout; DataError (saying how else to get the data) when it fails."""
    previous_timeout = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)  # a firewalled compute node should fail, not hang
    try:
        # torchvision reports progress on stdout, which prepare-data keeps for its JSON summary.
        with contextlib.redirect_stdout(sys.stderr):
            torchvision_download(root)
    except Exception as error:
        reason = f"download failed: {type(error).__name__}: {str(error)[:200]}".replace("\n", " ")
        raise DataError(missing_message(root, reason)) from None
    finally:
        socket.setdefaulttimeout(previous_timeout)


def pad_to_32(images: np.ndarray) -> np.ndarray:
    """(N, 28, 28) -> (N, 32, 32, 1) with a 2-pixel zero (background) border."""
    padded = np.pad(images, ((0, 0), (PADDING, PADDING), (PADDING, PADDING)), constant_values=0)
    return padded[..., None]


def fashion_mnist_arrays(root: Path, *, standin: bool, download: bool) -> dict[str, np.ndarray]:
    """The cache arrays (``images``, ``labels``, ``test_images``, ``test_labels``, ``num_classes``,
    ``source``); stand-ins are looked for in ROOT only (never Debian's real files)."""
    files = find_fashion_mnist(root, include_system=not standin)
    if files is None:
        if standin:
            raise DataError(
                missing_message(
                    root, f"no stand-ins there; run `febm make-standins --kind fashion_mnist --out {root}`"
                )
            )
        if not download:
            raise DataError(missing_message(root, "no idx files found and images.download is false"))
        download_fashion_mnist(root)
        files = find_fashion_mnist(root, include_system=False)
        if files is None:
            raise DataError(missing_message(root, "the download left no idx files"))
    splits = {
        split: read_split(files[f"{split}_images"], files[f"{split}_labels"], split, verify=not standin)
        for split in SPLIT_SIZES
    }
    folder = files["train_images"].parent
    return {
        "images": pad_to_32(splits["train"][0]),
        "labels": splits["train"][1],
        "test_images": pad_to_32(splits["test"][0]),
        "test_labels": splits["test"][1],
        "num_classes": np.array(FASHION_MNIST_CLASSES),
        "source": np.array(f"Fashion-MNIST idx files in {folder}, 28x28 zero-padded to 32x32"),
    }
