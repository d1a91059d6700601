"""Evaluation samples that continue the training run's own persistent chains (``protocol: replay``).

Short training budgets (the laptop preset: a few hundred iterations on two CPU cores) cannot afford
the paper's schedule at a length where chains started from noise reach the model's modes: a
scaled-down schedule of ~150 steps per chain scored far below the replay buffer it was trained with.
This protocol starts instead from the replay buffer the run ended with (``replay.npz``, written by
``febm train-images``) and runs ``steps`` more Langevin steps under the final network, so the chains
have seen every training iteration plus ``steps``. It is the persistent-chain evaluation that
short-run EBM studies report (e.g. JEM's and IGEBM's buffer samples); Tables 1-2 of the paper use the
``paper`` schedule instead, and every score records which protocol made it.

Per call: ``n`` slots drawn from the buffer without replacement (an error if the buffer holds fewer),
dequantised as the buffer is read in training ((k + U(0, 1)) / 256), each chain keeps the label it
was sampled for, ``steps`` Langevin steps in batches of ``batch_size``, then floor(256 x).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from febm.images.replay import ReplayChains, ReplayFileError

if TYPE_CHECKING:
    from febm.evaluation.protocol import ProtocolSamples


@dataclass(frozen=True)
class ReplayProtocolSettings:
    """Defaults live in the config schema (``evaluation.replay_protocol``); these mirror them."""

    batch_size: int = 500
    steps: int = 100
    step_size: float = 10.0
    noise_std: float = 0.005
    grad_clip: float = 0.01


def sample_replay_protocol(
    energy: nn.Module,
    n: int,
    num_classes: int | None,
    settings: ReplayProtocolSettings | Mapping[str, Any],
    generator: torch.Generator,
    device: torch.device | str,
    *,
    chains: ReplayChains,
    progress: bool = True,
    **sampler_options: Any,
) -> ProtocolSamples:
    """``n`` images continuing ``chains`` (see the module docstring); returns ProtocolSamples."""
    from febm.evaluation.protocol import (
        ProtocolSamples,
        _checked_arguments,
        advance_in_batches,
        image_shape_of,
    )

    settings, device = _checked_arguments(ReplayProtocolSettings, settings, generator, device)
    available = len(chains.images)
    if available < n:
        raise ReplayFileError(
            f"the replay buffer holds {available} chains, {n} samples were asked for: lower "
            "evaluation.num_samples or raise the run's replay capacity/iterations"
        )
    network_channels = image_shape_of(energy)[0]
    if chains.images.shape[-1] != network_channels:
        raise ReplayFileError(
            f"the replay buffer holds {chains.images.shape[-1]}-channel images, the network takes "
            f"{network_channels}: pass the replay.npz of the same run as the model"
        )
    order = torch.randperm(available, generator=torch.Generator().manual_seed(int(generator.initial_seed())))
    slots = order[:n].numpy()
    stored = torch.from_numpy(chains.images[slots]).permute(0, 3, 1, 2)
    labels = torch.from_numpy(chains.labels[slots].astype(np.int64))

    def replayed_chains(start: int, count: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        batch = stored[start : start + count].to(device)
        jitter = torch.rand(batch.shape, generator=generator, device=device)  # read back as in training
        chain_labels = labels[start : start + count].to(device) if num_classes else None
        return (batch.float() + jitter) / 256.0, chain_labels

    images = advance_in_batches(
        energy,
        n,
        replayed_chains,
        settings,
        generator,
        desc="replay protocol",
        progress=progress,
        **sampler_options,
    )
    record = {
        "protocol": "replay",
        "settings": asdict(settings),
        "buffer_chains": available,
        "buffer_iteration": chains.iteration,
    }
    return ProtocolSamples(images=images, labels=labels.numpy() if num_classes else None, record=record)
