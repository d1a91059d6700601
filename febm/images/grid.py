"""Sample grids as PNG, written atomically, each stating which run it shows.

A figure's run identity (dataset, method, divergence, seed) and what kind of figure it is travel inside
the PNG as text chunks (``febm.dataset`` ... ``febm.figure``; read back with ``Image.open(p).text``), so
a reader such as the report never derives them from the file's path. ``febm.figure`` is
``training_samples`` for a training run's samples.png (:func:`save_grid`: the last negatives as a plain
near-square grid) and ``uncurated_grid`` for ``febm image-figure --figure grid`` (the evaluation
samples, class r in row r when conditional); the other appendix figures name themselves.

Torch is imported inside :func:`save_grid` only, so reading a grid's identity stays light.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from febm.io import atomic_path
from febm.runspec import IDENTITY_FIELDS, identity_of_record

if TYPE_CHECKING:
    import torch
    from PIL.PngImagePlugin import PngInfo

TEXT_PREFIX = "febm."
FIGURE_KEY = f"{TEXT_PREFIX}figure"
TRAINING_SAMPLES = "training_samples"
UNCURATED_GRID = "uncurated_grid"
SAMPLE_GRIDS = (TRAINING_SAMPLES, UNCURATED_GRID)


def figure_text(record: Mapping[str, Any] | None, figure: str) -> dict[str, str]:
    """The PNG text chunks of a ``figure`` of the run ``record`` states (directly or under ``model``).

    A record without the full identity gives the figure kind alone: a reader then sees a figure of no
    known run instead of a guessed one."""
    text = {FIGURE_KEY: figure}
    identity = identity_of_record(record) if record is not None else None
    if identity is not None:
        text.update({f"{TEXT_PREFIX}{key}": str(identity[key]) for key in IDENTITY_FIELDS})
    return text


def png_info(text: Mapping[str, str]) -> PngInfo:
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    for key, value in text.items():
        info.add_text(key, value)
    return info


def read_figure_text(path: str | Path) -> dict[str, str]:
    """The ``febm.*`` text chunks of a PNG, without the prefix (empty for a PNG written without them).

    Raises OSError (PIL's UnidentifiedImageError is one) for a file PIL cannot read."""
    from PIL import Image

    with Image.open(path) as image:
        chunks = dict(getattr(image, "text", {}))  # only PNGs have text chunks
    return {key[len(TEXT_PREFIX) :]: value for key, value in chunks.items() if key.startswith(TEXT_PREFIX)}


def save_grid(
    images: torch.Tensor,
    path: str | Path,
    *,
    run: Mapping[str, Any] | None = None,
    max_images: int = 64,
) -> None:
    """``images``: float (B, C, H, W) in [0, 1], C = 3 (RGB) or 1 (written as a greyscale PNG); a
    near-square grid of at most ``max_images`` tiles. ``run``: the run's record (dataset, method,
    divergence, seed), embedded as its identity; a progress snapshot may go without one."""
    import torch
    from PIL import Image
    from torchvision.utils import make_grid

    shown = images.detach().float().cpu()[:max_images].clamp(0, 1)
    if shown.ndim != 4 or shown.shape[1] not in (1, 3):
        raise ValueError(f"save_grid needs images of shape (B, 3 or 1, H, W), got {tuple(shown.shape)}")
    greyscale = shown.shape[1] == 1
    grid = make_grid(shown, nrow=max(1, math.ceil(math.sqrt(shown.shape[0]))), padding=2, pad_value=1.0)
    pixels = (grid * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    if greyscale:
        pixels = pixels[:, :, 0]  # make_grid repeats a single channel three times
    with atomic_path(path) as tmp:
        Image.fromarray(pixels).save(tmp, format="PNG", pnginfo=png_info(figure_text(run, TRAINING_SAMPLES)))
