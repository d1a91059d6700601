"""Read image sets to score: a ``.npz`` of uint8 images or a folder of image files.

An ``.npz`` holds ``images`` (N, H, W, 3) uint8 (greyscale: (N, H, W, 1)) (the key ``febm sample`` writes), optionally ``labels``
(N,) (-1 = unconditional) and ``record`` or ``metadata`` (a JSON string: protocol, its settings, the
checkpoint and the model's metadata: dataset, method, divergence, seed...). A folder is read like
pytorch-fid reads one: the files with image extensions directly inside it, in sorted name order,
converted to RGB.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from febm.errors import FebmError

IMAGE_EXTENSIONS = {"bmp", "jpg", "jpeg", "pgm", "png", "ppm", "tif", "tiff", "webp"}  # pytorch-fid's list


class ImageInputError(FebmError):
    """An image set that cannot be read or has the wrong shape or type."""


@dataclass
class ImageSet:
    images: np.ndarray  # (N, H, W, 3) uint8
    labels: np.ndarray | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    source: str = ""


def _check_images(images: np.ndarray, source: str) -> np.ndarray:
    if images.dtype != np.uint8:
        raise ImageInputError(
            f"{source}: images are {images.dtype}, expected uint8; quantise samples x in [0, 1] with "
            "np.clip(np.floor(256 * x), 0, 255).astype(np.uint8) (the original's rule) before scoring"
        )
    if images.ndim == 4 and images.shape[1] in (1, 3) and images.shape[-1] not in (1, 3):
        images = images.transpose(0, 2, 3, 1)
    if images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise ImageInputError(
            f"{source}: expected images of shape (N, H, W, 3), or (N, H, W, 1) for greyscale, got {images.shape}"
        )
    if len(images) == 0:
        raise ImageInputError(f"{source}: no images")
    return np.ascontiguousarray(images)


def load_npz_images(path: Path, key: str | None = None) -> ImageSet:
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise ImageInputError(f"cannot read {str(path)!r} as .npz: {error}") from None
    with archive:
        names = list(archive.files)
        if key is None:
            candidates = [name for name in ("images", "samples", "x") if name in names]
            if not candidates:
                raise ImageInputError(
                    f"{str(path)!r} has no 'images' array (keys: {names}); pass the key to use"
                )
            key = candidates[0]
        if key not in names:
            raise ImageInputError(f"{str(path)!r} has no array {key!r} (keys: {names})")
        images = _check_images(archive[key], f"{path}[{key}]")
        labels = archive["labels"] if "labels" in names else None
        if labels is not None and (labels.shape != (len(images),) or np.all(labels < 0)):
            labels = None  # febm sample writes -1 for unconditional models
        metadata = {}
        for meta_key in ("record", "metadata"):
            if meta_key in names:
                metadata = json.loads(str(archive[meta_key]))
    return ImageSet(images=images, labels=labels, metadata=metadata, source=str(path))


def load_folder_images(path: Path) -> ImageSet:
    from PIL import Image

    files = sorted(
        p for p in path.iterdir() if p.is_file() and p.suffix.lower().lstrip(".") in IMAGE_EXTENSIONS
    )
    if not files:
        raise ImageInputError(
            f"folder {str(path)!r} has no image files ({', '.join(sorted(IMAGE_EXTENSIONS))})"
        )
    arrays = []
    for file in files:
        with Image.open(file) as image:
            arrays.append(np.asarray(image.convert("RGB")))
    sizes = {array.shape for array in arrays}
    if len(sizes) > 1:
        raise ImageInputError(
            f"folder {str(path)!r} mixes image sizes {sorted(sizes)}; resize them to one size"
        )
    return ImageSet(images=_check_images(np.stack(arrays), str(path)), source=str(path))


def load_image_set(path: str | Path, key: str | None = None) -> ImageSet:
    """Images from an ``.npz`` file or a folder of image files."""
    path = Path(path)
    if path.is_dir():
        return load_folder_images(path)
    if path.is_file():
        return load_npz_images(path, key)
    raise ImageInputError(f"{str(path)!r} does not exist; pass a .npz of uint8 images or a folder of PNGs")


def save_png_folder(images: np.ndarray, folder: str | Path) -> list[Path]:
    """Write uint8 (N, H, W, 3) images as numbered PNGs (lossless, so scores from the folder match)."""
    from PIL import Image

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    width = max(5, len(str(len(images))))
    paths = []
    for index, image in enumerate(images):
        target = folder / f"{index:0{width}d}.png"
        Image.fromarray(image).save(target)
        paths.append(target)
    return paths
