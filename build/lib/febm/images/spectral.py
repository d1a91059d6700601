"""Spectral-normalised 3x3 convolutions as in the original TF code (docs/original-code.md §4).

Why not ``torch.nn.utils.parametrizations.spectral_norm``:

* the original's conv2 uses a *bounded* variant, W * min(sigma', 1) / sigma' with sigma' = sigma + 1e-6,
  which only shrinks weights whose norm exceeds 1 (the near-zero init of conv2 passes unscaled);
* the original updates the power-iteration vector u once per TF session run, i.e. once per training
  step, not once per forward call. PyTorch's hook would run 60+ power iterations per sampler run.

So the power iteration is explicit: :meth:`SpectralConv2d.power_iteration_` advances u (the trainer
calls it once per step for every layer through :func:`power_iteration_`), while ``forward`` only reads u.
Inside the Langevin sampler :func:`frozen_for_sampling` evaluates every normalised weight once,
detached, so the 60 steps reuse it and no weight gradient is ever formed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn

L2_EPS = 1e-12
BOUNDED_SIGMA_EPS = 1e-6


def _l2_normalise(vector: Tensor) -> Tensor:
    # The original's l2-normalise: v / (||v|| + eps), not max(||v||, eps).
    return vector / (vector.norm() + L2_EPS)


class SpectralConv2d(nn.Module):
    """3x3 'same' convolution without bias whose weight is divided by its spectral norm.

    ``bounded=False``: W / sigma (stem, conv1, shortcut). ``bounded=True``: W * min(sigma', 1) / sigma'
    (conv2). The norm is that of W reshaped to (C_out, C_in * 3 * 3), estimated with the persistent
    vector ``u`` (buffer, N(0, 1) init as in the original) and the matching ``v`` of the last power step.
    """

    def __init__(self, in_channels: int, out_channels: int, *, bounded: bool, init_std: float) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.bounded = bounded
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, 3, 3) * init_std)
        self.register_buffer("u", torch.randn(out_channels))
        # v is kept from the last power step so sigma = u^T W v uses the pair the original used.
        with torch.no_grad():
            self.register_buffer("v", _l2_normalise(self.u @ self.weight.reshape(out_channels, -1)))
        self._frozen_weight: Tensor | None = None

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, kernel_size=3, bounded={self.bounded}"

    @torch.no_grad()
    def power_iteration_(self) -> None:
        """One step of the power method on W; updates ``u`` in place (once per training step)."""
        matrix = self.weight.detach().reshape(self.out_channels, -1)
        self.v.copy_(_l2_normalise(self.u @ matrix))
        self.u.copy_(_l2_normalise(matrix @ self.v))

    def sigma(self) -> Tensor:
        """u^T W v with u, v fixed: differentiable in W, as the original's stop-gradient on u and v."""
        matrix = self.weight.reshape(self.out_channels, -1)
        return self.u.detach() @ (matrix @ self.v.detach())

    def normalised_weight(self) -> Tensor:
        # Autocast off: sigma in bf16 would be too coarse; the conv itself may still run in bf16.
        with torch.autocast(self.weight.device.type, enabled=False):
            sigma = self.sigma()
            if self.bounded:
                sigma = sigma + BOUNDED_SIGMA_EPS
                return self.weight * torch.clamp(sigma, max=1.0) / sigma
            return self.weight / sigma

    def forward(self, x: Tensor) -> Tensor:
        weight = self._frozen_weight if self._frozen_weight is not None else self.normalised_weight()
        if not torch.is_autocast_enabled(x.device.type):
            weight = weight.to(x.dtype)
        return F.conv2d(x, weight, padding=1)


def spectral_layers(module: nn.Module) -> list[SpectralConv2d]:
    return [layer for layer in module.modules() if isinstance(layer, SpectralConv2d)]


def power_iteration_(module: nn.Module) -> None:
    """Advance u of every spectral-normalised layer by one power step (call once per training step)."""
    for layer in spectral_layers(module):
        layer.power_iteration_()


@contextlib.contextmanager
def frozen_for_sampling(module: nn.Module) -> Iterator[nn.Module]:
    """Parameters stop requiring gradients and normalised weights are computed once, detached.

    Works on any module (those without spectral layers only get their parameters frozen), so the
    sampler can take any energy function.
    """
    parameters = list(module.parameters())
    previous = [p.requires_grad for p in parameters]
    layers = spectral_layers(module)
    try:
        for parameter in parameters:
            parameter.requires_grad_(False)
        with torch.no_grad():
            for layer in layers:
                layer._frozen_weight = layer.normalised_weight()
        yield module
    finally:
        for layer in layers:
            layer._frozen_weight = None
        for parameter, flag in zip(parameters, previous, strict=True):
            parameter.requires_grad_(flag)
