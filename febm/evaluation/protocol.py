"""How evaluation samples are drawn: the paper's persistent-buffer schedule, or plain chains from noise
(or, in :mod:`febm.evaluation.replay_protocol`, the training run's own chains continued).

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

Works with any energy module ``forward(x: float (B, C, H, W) in [0, 1], y: LongTensor (B,) | None) -> (B,)``;
the image shape (C, 32, 32) comes from the network's config (:func:`image_shape_of`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any, TypeVar

import numpy as np
import torch
from torch import Tensor, nn
from tqdm import tqdm

from febm.images.sampler import langevin, quantise_to_uint8, uniform_noise

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
