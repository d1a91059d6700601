"""Langevin dynamics on an image energy, as in the original code (docs/original-code.md section 5).

The image code's variant of Eq. 5 (:func:`febm.langevin.langevin_dynamics` with the noise first, an
element-wise gradient clip, no 1/2 factor and a clamp to [0, 1]); one step, repeated ``steps`` times (60 in
training, 5 per call in the paper's evaluation schedule):

    x <- x + N(0, noise_std^2)                      # noise first
    G <- clamp(grad_x sum_b E(x_b, y_b), -grad_clip, grad_clip)   # element-wise
    x <- clamp(x - step_size * G, 0, 1)

No Metropolis correction. The network's weights are frozen for the whole run
(:func:`febm.images.spectral.frozen_for_sampling`): spectral norms are evaluated once per run and no
parameter gradient is formed. The returned samples are detached, so a loss on them never reaches
the sampler.

Any module with ``forward(x: float (B, 3, H, W) in [0, 1], y: LongTensor (B,) | None) -> (B,)`` works.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from febm.images.spectral import frozen_for_sampling
from febm.langevin import langevin_dynamics


@dataclass(frozen=True)
class LangevinSettings:
    """Sampler settings; defaults live in the config schema (``images.<dataset>.sampler``)."""

    steps: int
    step_size: float
    noise_std: float
    grad_clip: float

    @classmethod
    def from_config(cls, section: dict[str, Any]) -> LangevinSettings:
        return cls(
            steps=int(section["steps"]),
            step_size=float(section["step_size"]),
            noise_std=float(section["noise_std"]),
            grad_clip=float(section["grad_clip"]),
        )


def precision_context(device_type: str, precision: str) -> contextlib.AbstractContextManager:
    """bf16 autocast when asked, else nothing (float32)."""
    if precision == "bf16":
        return torch.autocast(device_type, dtype=torch.bfloat16)
    if precision != "float32":
        raise ValueError(f"precision must be 'float32' or 'bf16', got {precision!r}")
    return contextlib.nullcontext()


def langevin(
    energy: nn.Module,
    x: Tensor,
    y: Tensor | None,
    *,
    steps: int,
    step_size: float,
    noise_std: float,
    grad_clip: float,
    generator: torch.Generator | None = None,
    precision: str = "float32",
    channels_last: bool = False,
) -> Tensor:
    """Run ``steps`` Langevin steps from ``x`` (float, [0, 1]) under fixed labels ``y``; returns detached x."""
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    x = x.detach().float().contiguous(memory_format=memory_format)

    def energy_gradient(point: Tensor) -> Tensor:
        leaf = point.detach().requires_grad_(True)
        with precision_context(leaf.device.type, precision):
            total_energy = energy(leaf, y).float().sum()
        (gradient,) = torch.autograd.grad(total_energy, leaf)
        return gradient

    with frozen_for_sampling(energy), torch.enable_grad():
        x = langevin_dynamics(
            x,
            energy_gradient,
            steps=steps,
            step_size=step_size,
            noise_std=noise_std,
            noise_first=True,
            grad_clip=grad_clip,
            clamp=(0.0, 1.0),
            generator=generator,
        )
    return x.detach()


def langevin_with(
    settings: LangevinSettings, energy: nn.Module, x: Tensor, y: Tensor | None, **kwargs
) -> Tensor:
    """:func:`langevin` with the step settings taken from a :class:`LangevinSettings`."""
    return langevin(
        energy,
        x,
        y,
        steps=settings.steps,
        step_size=settings.step_size,
        noise_std=settings.noise_std,
        grad_clip=settings.grad_clip,
        **kwargs,
    )


def uniform_noise(
    count: int, image_shape: tuple[int, ...], device: torch.device | str, generator: torch.Generator | None
) -> Tensor:
    """Chain starts: U(0, 1) images, as the original's ``datasource=random``."""
    return torch.rand((count, *image_shape), generator=generator, device=device)


def quantise_to_uint8(x: Tensor) -> Tensor:
    """floor(256 x) clipped to [0, 255], the original evaluation's quantisation; returns uint8 NHWC."""
    pixels = torch.clamp(torch.floor(x.detach().float() * 256.0), 0, 255).to(torch.uint8)
    return pixels.permute(0, 2, 3, 1).contiguous()
