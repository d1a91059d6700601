"""Sample figures (Appendix G): uncurated grids, the sampling process from noise, denoising and inpainting
with the learned energy, and nearest training neighbours of samples.

All panels are pixel-exact PNG grids (no resampling), RGB for colour images and greyscale for 1-channel
ones. Functions that sample take any energy module ``forward(x: float (B, C, H, W) in [0, 1], y: LongTensor
(B,) | None) -> (B,)``; the chains' shape comes from the network's config
(:func:`febm.evaluation.protocol.image_shape_of`).
"""

from __future__ import annotations

import io
import itertools
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from febm.evaluation.protocol import image_shape_of
from febm.images.grid import UNCURATED_GRID, figure_text, png_info
from febm.images.sampler import langevin, quantise_to_uint8, uniform_noise
from febm.io import write_bytes_atomic

PAD_VALUE = 255  # white separators between tiles
# `febm image-figure --figure <name>` -> the kind its PNG states (febm.images.grid); the rest keep their name.
FIGURE_KINDS = {"grid": UNCURATED_GRID}


def tile_grid(tiles: np.ndarray, pad: int = 2) -> np.ndarray:
    """(rows, cols, H, W, C) uint8 -> one (rows*(H+pad)+pad, cols*(W+pad)+pad, C) image (C = 3 or 1)."""
    rows, cols, height, width, channels = tiles.shape
    canvas = np.full(
        (rows * (height + pad) + pad, cols * (width + pad) + pad, channels), PAD_VALUE, dtype=np.uint8
    )
    for row in range(rows):
        for col in range(cols):
            top, left = pad + row * (height + pad), pad + col * (width + pad)
            canvas[top : top + height, left : left + width] = tiles[row, col]
    return canvas


def uncurated_tiles(images: np.ndarray, labels: np.ndarray | None, rows: int, cols: int) -> np.ndarray:
    """The first images in sample order (no selection); with labels, row r holds the first of class r."""
    blank = np.full(images.shape[1:], PAD_VALUE, dtype=np.uint8)
    tiles = np.empty((rows, cols, *images.shape[1:]), dtype=np.uint8)
    for row in range(rows):
        if labels is not None:
            chosen = images[labels == row][:cols]
        else:
            chosen = images[row * cols : (row + 1) * cols]
        for col in range(cols):
            tiles[row, col] = chosen[col] if col < len(chosen) else blank
    return tiles


def _chain_labels(count: int, num_classes: int | None, device: torch.device) -> torch.Tensor | None:
    return torch.arange(count, device=device) % num_classes if num_classes else None


def sampling_process(
    energy: nn.Module,
    chains: int,
    num_classes: int | None,
    steps: int,
    snapshots: int,
    sampler: Mapping[str, Any],
    generator: torch.Generator,
    device: torch.device | str,
) -> np.ndarray:
    """(chains, snapshots, H, W, C): chains from U(0, 1) noise photographed at evenly spaced steps (first = noise)."""
    device = torch.device(device)
    x = uniform_noise(chains, image_shape_of(energy), device, generator)
    labels = _chain_labels(chains, num_classes, device)
    marks = np.linspace(0, steps, snapshots).round().astype(int)
    frames = [quantise_to_uint8(x).cpu().numpy()]
    for done, target in itertools.pairwise(marks):
        if target > done:
            x = langevin(
                energy, x, labels, steps=int(target - done), generator=generator, **_step_settings(sampler)
            )
        frames.append(quantise_to_uint8(x).cpu().numpy())
    return np.stack(frames, axis=1)


def _step_settings(sampler: Mapping[str, Any]) -> dict[str, float]:
    return {key: float(sampler[key]) for key in ("step_size", "noise_std", "grad_clip")}


def restore(
    energy: nn.Module,
    clean: np.ndarray,
    labels: np.ndarray | None,
    mode: str,
    steps: int,
    sampler: Mapping[str, Any],
    generator: torch.Generator,
    device: torch.device | str,
    noise_std: float = 0.3,
) -> np.ndarray:
    """(N, 3, H, W, C) rows of [original, corrupted, restored] for ``denoise`` or ``inpaint``.

    denoise: add N(0, noise_std^2) and run Langevin from there. inpaint: replace the lower half with
    U(0, 1) and run Langevin, putting the known upper half back after every step, so only the missing
    pixels follow the energy.
    """
    device = torch.device(device)
    x_clean = torch.from_numpy(clean).to(device).permute(0, 3, 1, 2).float().add(0.5).div(256)
    y = torch.from_numpy(labels).to(device).long() if labels is not None else None
    if mode == "denoise":
        noise = torch.randn(x_clean.shape, generator=generator, device=device)
        corrupted = (x_clean + noise_std * noise).clamp(0, 1)
        restored = langevin(energy, corrupted, y, steps=steps, generator=generator, **_step_settings(sampler))
    elif mode == "inpaint":
        known = torch.ones_like(x_clean)
        known[:, :, x_clean.shape[2] // 2 :, :] = 0
        corrupted = known * x_clean + (1 - known) * uniform_noise(
            len(x_clean), x_clean.shape[1:], device, generator
        )
        restored = corrupted
        for _ in range(steps):
            restored = langevin(energy, restored, y, steps=1, generator=generator, **_step_settings(sampler))
            restored = known * x_clean + (1 - known) * restored
    else:
        raise ValueError(f"unknown restoration {mode!r}; choose denoise or inpaint")
    panels = [clean, quantise_to_uint8(corrupted).cpu().numpy(), quantise_to_uint8(restored).cpu().numpy()]
    return np.stack(panels, axis=1)


def nearest_neighbours(samples: np.ndarray, training: np.ndarray, k: int, chunk: int = 4096) -> np.ndarray:
    """(N, 1 + k, H, W, C): each sample followed by its k nearest training images in pixel L2 distance."""
    queries = torch.from_numpy(samples.reshape(len(samples), -1)).double()
    best_distance = torch.full((len(samples), k), float("inf"), dtype=torch.float64)
    best_index = torch.zeros((len(samples), k), dtype=torch.long)
    for start in range(0, len(training), chunk):
        block = torch.from_numpy(training[start : start + chunk].reshape(-1, queries.shape[1])).double()
        distance = torch.cdist(queries, block)
        merged_distance = torch.cat([best_distance, distance], dim=1)
        merged_index = torch.cat(
            [best_index, torch.arange(start, start + len(block)).expand(len(samples), -1)], dim=1
        )
        order = merged_distance.topk(k, dim=1, largest=False).indices
        best_distance, best_index = merged_distance.gather(1, order), merged_index.gather(1, order)
    neighbours = training[best_index.numpy()]
    return np.concatenate([samples[:, None], neighbours], axis=1)


def write_png(
    path: str | Path, image: np.ndarray, scale: int = 2, text: Mapping[str, str] | None = None
) -> None:
    """(H, W, 3) RGB or (H, W, 1) / (H, W) greyscale uint8; nearest-neighbour upscaling by ``scale``
    keeps pixels crisp in the report. ``text``: PNG text chunks, e.g. the run identity of
    :func:`febm.images.grid.figure_text`."""
    from PIL import Image

    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]  # PIL writes a 2-D array as an 8-bit greyscale PNG
    if scale > 1:
        image = image.repeat(scale, axis=0).repeat(scale, axis=1)
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG", pnginfo=png_info(text or {}))
    write_bytes_atomic(path, buffer.getvalue())


def identity_text(figure: str, record: Mapping[str, Any] | None, source: str) -> dict[str, str]:
    """The PNG text chunks of a ``febm image-figure`` output: its kind and the run that ``record`` (the
    samples' record, or the checkpoint's metadata) states; a warning where the record states none."""
    text = figure_text(record, FIGURE_KINDS.get(figure, figure))
    if len(text) == 1:
        print(
            f"febm image-figure: warning: {source} records no run identity (dataset, method, divergence, "
            "seed); the figure carries none, so `febm report` will refuse it as a sample grid",
            file=sys.stderr,
        )
    return text
