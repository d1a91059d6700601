"""Sample grids as PNG, written atomically."""

from __future__ import annotations

import math
from pathlib import Path

import torch

from febm.io import atomic_path


def save_grid(images: torch.Tensor, path: str | Path, *, max_images: int = 64) -> None:
    """``images``: float (B, C, H, W) in [0, 1], C = 3 (RGB) or 1 (written as a greyscale PNG); a
    near-square grid of at most ``max_images`` tiles."""
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
        Image.fromarray(pixels).save(tmp, format="PNG")
