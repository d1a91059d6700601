"""How evaluation samples are drawn: the paper's persistent-buffer schedule, or plain chains from noise
(or, in :mod:`febm.evaluation.replay_protocol`, the training run's own chains continued).

This module holds the plain protocol, the shared batch loop and the dispatcher :func:`sample_with_protocol`;
the paper's schedule (``test_inception_febm.py``, docs/original-code.md §8) is in
``febm/evaluation/paper_protocol.py`` and the shared records in ``febm/evaluation/protocol_base.py``. Every
public name of all three is importable from here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from tqdm import tqdm

from febm.evaluation.paper_protocol import paper_protocol, sample_paper_protocol, write_back
from febm.evaluation.protocol_base import (
    IMAGE_SHAPE,
    IMAGE_SIZE,
    PaperProtocolSettings,
    PlainProtocolSettings,
    ProtocolSamples,
    ProtocolSettings,
    _checked_arguments,
    _random_labels,
    _settings,
    image_shape_of,
)
from febm.images.sampler import langevin, quantise_to_uint8, uniform_noise

__all__ = [
    "IMAGE_SHAPE",
    "IMAGE_SIZE",
    "PaperProtocolSettings",
    "PlainProtocolSettings",
    "ProtocolSamples",
    "ProtocolSettings",
    "_checked_arguments",
    "_random_labels",
    "_settings",
    "advance_in_batches",
    "image_shape_of",
    "paper_protocol",
    "plain_protocol",
    "sample_paper_protocol",
    "sample_plain_protocol",
    "sample_with_protocol",
    "write_back",
]


def sample_plain_protocol(
    energy: nn.Module,
    n: int,
    num_classes: int | None,
    settings: PlainProtocolSettings | Mapping[str, Any],
    generator: torch.Generator,
    device: torch.device | str,
    *,
    progress: bool = True,
    image_shape: tuple[int, int, int] | None = None,
    **sampler_options: Any,
) -> ProtocolSamples:
    """Independent chains: U(0, 1) starts, random labels, ``steps`` Langevin steps, floor(256 x).

    ``image_shape``: (C, H, W) of the chains; default :func:`image_shape_of` the energy.
    """
    settings, device = _checked_arguments(PlainProtocolSettings, settings, generator, device)
    image_shape = image_shape or image_shape_of(energy)
    labels: list[Tensor] = []

    def fresh_chains(start: int, count: int) -> tuple[Tensor, Tensor | None]:
        chain_labels = _random_labels(count, num_classes, generator, device)
        labels.append(chain_labels.cpu())
        return uniform_noise(count, image_shape, device, generator), chain_labels if num_classes else None

    images = advance_in_batches(
        energy,
        n,
        fresh_chains,
        settings,
        generator,
        desc="plain protocol",
        progress=progress,
        **sampler_options,
    )
    return ProtocolSamples(
        images=images,
        labels=torch.cat(labels).numpy() if num_classes else None,
        record={"protocol": "plain", "settings": asdict(settings)},
    )


def advance_in_batches(
    energy: nn.Module,
    n: int,
    make_batch: Callable[[int, int], tuple[Tensor, Tensor | None]],
    settings: Any,
    generator: torch.Generator,
    *,
    desc: str,
    progress: bool,
    **sampler_options: Any,
) -> np.ndarray:
    """``n`` chains, ``settings.batch_size`` at a time: ``make_batch(start, count)`` gives the starts and
    labels (None: unconditional), ``settings.steps`` Langevin steps run, floor(256 x) as uint8 NHWC."""
    images = []
    for start in tqdm(range(0, n, settings.batch_size), desc=desc, unit="batch", disable=not progress):
        starts, chain_labels = make_batch(start, min(settings.batch_size, n - start))
        advanced = langevin(
            energy,
            starts,
            chain_labels,
            steps=settings.steps,
            step_size=settings.step_size,
            noise_std=settings.noise_std,
            grad_clip=settings.grad_clip,
            generator=generator,
            **sampler_options,
        )
        images.append(quantise_to_uint8(advanced).cpu())
    return torch.cat(images).numpy()


def plain_protocol(
    energy: nn.Module,
    n: int,
    num_classes: int | None,
    settings: PlainProtocolSettings | Mapping[str, Any],
    generator: torch.Generator,
    device: torch.device | str,
) -> np.ndarray:
    """uint8 NHWC images from fresh chains (the comparison protocol)."""
    return sample_plain_protocol(energy, n, num_classes, settings, generator, device).images


def sample_with_protocol(
    name: str,
    energy: nn.Module,
    n: int,
    num_classes: int | None,
    evaluation_config: Mapping[str, Any],
    generator: torch.Generator,
    device: torch.device | str,
    *,
    replay_chains: Any = None,
    **options: Any,
) -> ProtocolSamples:
    """Dispatch on ``paper``/``plain``/``replay`` with settings from the ``evaluation`` config section.

    ``replay_chains``: the run's :class:`febm.evaluation.replay_protocol.ReplayChains` (``replay`` only).
    """
    if name == "paper":
        return sample_paper_protocol(
            energy, n, num_classes, evaluation_config["paper_protocol"], generator, device, **options
        )
    if name == "plain":
        return sample_plain_protocol(
            energy, n, num_classes, evaluation_config["plain_protocol"], generator, device, **options
        )
    if name == "replay":
        from febm.evaluation.replay_protocol import sample_replay_protocol

        if replay_chains is None:
            raise ValueError("protocol 'replay' continues a run's replay buffer: pass replay_chains")
        return sample_replay_protocol(
            energy,
            n,
            num_classes,
            evaluation_config["replay_protocol"],
            generator,
            device,
            chains=replay_chains,
            **options,
        )
    raise ValueError(f"unknown protocol {name!r}; choose paper, plain or replay")
