"""What every evaluation sampling protocol shares: the image shape of an energy, the settings records, the
returned :class:`ProtocolSamples`, argument checks and random labels. The protocols themselves are in
``febm/evaluation/paper_protocol.py`` (the paper's schedule), ``febm/evaluation/protocol.py`` (plain chains and the
dispatcher) and ``febm/evaluation/replay_protocol.py``.

Works with any energy module ``forward(x: float (B, C, H, W) in [0, 1], y: LongTensor (B,) | None) -> (B,)``;
the image shape (C, 32, 32) comes from the network's config (:func:`image_shape_of`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, TypeVar

import numpy as np
import torch
from torch import Tensor, nn

IMAGE_SIZE = 32
IMAGE_SHAPE = (3, IMAGE_SIZE, IMAGE_SIZE)  # energies without a network config (hand-made test energies)


def image_shape_of(energy: nn.Module) -> tuple[int, int, int]:
    """(C, 32, 32) with C from the network's config (``image_channels``: 3 colour, 1 greyscale).

    Looks through a DDP wrapper (``module``) or a compiled one (``_orig_mod``); modules without a
    config sample RGB.
    """
    network = energy
    for wrapper_attribute in ("module", "_orig_mod"):
        network = getattr(network, wrapper_attribute, network)
    channels = getattr(getattr(network, "config", None), "image_channels", IMAGE_SHAPE[0])
    return (int(channels), IMAGE_SIZE, IMAGE_SIZE)


@dataclass(frozen=True)
class PaperProtocolSettings:
    """Defaults live in the config schema (``evaluation.paper_protocol``); these mirror them for direct use."""

    chains_per_round: int = 1000
    batch_size: int = 512
    calls_per_round: int = 360
    nomix_calls: int = 140
    steps_per_call: int = 5
    step_size: float = 10.0
    noise_std: float = 0.005
    grad_clip: float = 0.05
    reinit_image_prob: float = 0.01
    reinit_label_prob: float = 0.1


@dataclass(frozen=True)
class PlainProtocolSettings:
    batch_size: int = 512
    steps: int = 700
    step_size: float = 10.0
    noise_std: float = 0.005
    grad_clip: float = 0.05


@dataclass
class ProtocolSamples:
    images: np.ndarray  # (n, H, W, C) uint8
    labels: np.ndarray | None  # (n,) int64 for conditional models
    record: dict[str, Any]  # protocol name and settings, stored with the samples and every score


def _settings(kind: type, settings: Any) -> Any:
    if isinstance(settings, kind):
        return settings
    if isinstance(settings, Mapping):
        known = {field.name for field in fields(kind)}
        unknown = sorted(set(settings) - known)
        if unknown:
            raise ValueError(f"unknown {kind.__name__} keys {unknown}; known: {sorted(known)}")
        return kind(**settings)
    raise TypeError(f"settings must be a {kind.__name__} or a mapping, got {type(settings).__name__}")


def _random_labels(
    count: int, num_classes: int | None, generator: torch.Generator, device: torch.device
) -> Tensor:
    if not num_classes:
        return torch.zeros(count, dtype=torch.long, device=device)
    return torch.randint(0, num_classes, (count,), generator=generator, device=device)


ProtocolSettings = TypeVar("ProtocolSettings", PaperProtocolSettings, PlainProtocolSettings)


def _checked_arguments(
    kind: type[ProtocolSettings],
    settings: ProtocolSettings | Mapping[str, Any],
    generator: torch.Generator,
    device: torch.device | str,
) -> tuple[ProtocolSettings, torch.device]:
    """Settings as ``kind`` and the device as a torch.device, with the generator checked to live there."""
    settings = _settings(kind, settings)
    device = torch.device(device)
    if generator.device.type != device.type:
        raise ValueError(
            f"the generator is on {generator.device}, the sampler runs on {device}; create it there"
        )
    return settings, device
