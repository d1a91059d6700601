"""The paper's evaluation sampling schedule, persistent buffers per round.

The paper's schedule (``test_inception_febm.py``, docs/original-code.md §8), per round of
``chains_per_round`` images:

* a fresh float buffer; while it holds fewer than ``chains_per_round`` chains, a sampler call starts
  ``batch_size`` chains from U(0, 1) with uniform random labels and *appends* them (512-chain calls
  therefore fill 1,024 slots for 1,000 images, as in the original);
* every later call draws ``batch_size`` slots uniformly with replacement; before the last
  ``nomix_calls`` calls, each drawn chain restarts from U(0, 1) with ``reinit_image_prob`` and gets a
  random label with ``reinit_label_prob``; ``steps_per_call`` Langevin steps run under the test-time
  gradient clip and the chains are written back into their slots (a slot drawn twice keeps the last
  write, as the original's loop did);
* after ``calls_per_round`` calls the first ``chains_per_round`` slots are quantised by floor(256 x).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from tqdm import tqdm

from febm.evaluation.protocol_base import (
    PaperProtocolSettings,
    ProtocolSamples,
    _checked_arguments,
    _random_labels,
    image_shape_of,
)
from febm.images.sampler import langevin, quantise_to_uint8, uniform_noise

__all__ = ["PaperProtocolSettings", "paper_protocol", "sample_paper_protocol", "write_back"]


def write_back(buffer: Tensor, slots: Tensor, values: Tensor) -> None:
    """buffer[slots] = values where, for a slot drawn more than once, the last occurrence wins.

    ``index_put_`` with duplicate indices is unordered on CUDA, so keep only each slot's last position.
    """
    positions = torch.arange(len(slots), device=slots.device)
    last_position = torch.full((buffer.shape[0],), -1, dtype=torch.long, device=slots.device)
    last_position.scatter_reduce_(0, slots, positions, reduce="amax")
    keep = last_position[slots] == positions
    buffer[slots[keep]] = values[keep]


def _paper_round(
    energy: nn.Module,
    settings: PaperProtocolSettings,
    num_classes: int | None,
    generator: torch.Generator,
    device: torch.device,
    progress: tqdm,
    sampler_options: Mapping[str, Any],
    image_shape: tuple[int, int, int],
) -> tuple[Tensor, Tensor]:
    conditional = bool(num_classes)
    images = torch.empty((0, *image_shape), device=device)
    labels = torch.empty((0,), dtype=torch.long, device=device)
    last_mixing_call = settings.calls_per_round - settings.nomix_calls
    for call in range(settings.calls_per_round):
        filling = images.shape[0] < settings.chains_per_round
        if filling:
            starts = uniform_noise(settings.batch_size, image_shape, device, generator)
            chain_labels = _random_labels(settings.batch_size, num_classes, generator, device)
        else:
            slots = torch.randint(
                0, images.shape[0], (settings.batch_size,), generator=generator, device=device
            )
            starts, chain_labels = images[slots], labels[slots]
            if call < last_mixing_call:
                restart = torch.rand(settings.batch_size, generator=generator, device=device)
                restart = restart < settings.reinit_image_prob
                fresh = uniform_noise(settings.batch_size, image_shape, device, generator)
                starts = torch.where(restart[:, None, None, None], fresh, starts)
                relabel = torch.rand(settings.batch_size, generator=generator, device=device)
                relabel = relabel < settings.reinit_label_prob
                new_labels = _random_labels(settings.batch_size, num_classes, generator, device)
                chain_labels = torch.where(relabel, new_labels, chain_labels)
        advanced = langevin(
            energy,
            starts,
            chain_labels if conditional else None,
            steps=settings.steps_per_call,
            step_size=settings.step_size,
            noise_std=settings.noise_std,
            grad_clip=settings.grad_clip,
            generator=generator,
            **sampler_options,
        )
        if filling:
            images = torch.cat([images, advanced])
            labels = torch.cat([labels, chain_labels])
        else:
            write_back(images, slots, advanced)
            write_back(labels, slots, chain_labels)
        progress.update(1)
    return images[: settings.chains_per_round], labels[: settings.chains_per_round]


def sample_paper_protocol(
    energy: nn.Module,
    n: int,
    num_classes: int | None,
    settings: PaperProtocolSettings | Mapping[str, Any],
    generator: torch.Generator,
    device: torch.device | str,
    *,
    progress: bool = True,
    image_shape: tuple[int, int, int] | None = None,
    **sampler_options: Any,
) -> ProtocolSamples:
    """``n`` images (and labels) by the paper's schedule; ``sampler_options`` go to ``langevin`` (precision...).

    ``image_shape``: (C, H, W) of the chains; default :func:`image_shape_of` the energy.
    """
    settings, device = _checked_arguments(PaperProtocolSettings, settings, generator, device)
    image_shape = image_shape or image_shape_of(energy)
    if settings.nomix_calls > settings.calls_per_round:
        raise ValueError(
            f"nomix_calls ({settings.nomix_calls}) exceeds calls_per_round ({settings.calls_per_round})"
        )
    fill_calls = math.ceil(settings.chains_per_round / settings.batch_size)
    if settings.calls_per_round < fill_calls:
        raise ValueError(
            f"calls_per_round ({settings.calls_per_round}) cannot fill {settings.chains_per_round} chains "
            f"with batches of {settings.batch_size}"
        )
    rounds = math.ceil(n / settings.chains_per_round)
    images, labels = [], []
    with tqdm(
        total=rounds * settings.calls_per_round, desc="paper protocol", unit="call", disable=not progress
    ) as bar:
        for _ in range(rounds):
            round_images, round_labels = _paper_round(
                energy, settings, num_classes, generator, device, bar, sampler_options, image_shape
            )
            images.append(quantise_to_uint8(round_images).cpu())
            labels.append(round_labels.cpu())
    return ProtocolSamples(
        images=torch.cat(images)[:n].numpy(),
        labels=torch.cat(labels)[:n].numpy() if num_classes else None,
        record={"protocol": "paper", "settings": asdict(settings), "rounds": rounds},
    )


def paper_protocol(
    energy: nn.Module,
    n: int,
    num_classes: int | None,
    settings: PaperProtocolSettings | Mapping[str, Any],
    generator: torch.Generator,
    device: torch.device | str,
) -> np.ndarray:
    """uint8 NHWC images drawn by the paper's evaluation schedule (see the module docstring)."""
    return sample_paper_protocol(energy, n, num_classes, settings, generator, device).images
