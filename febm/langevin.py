"""Unadjusted Langevin dynamics (paper Eq. 5), the one implementation both studies sample with.

Eq. 5 as written is x <- x - (eps / 2) grad_x E(x) + sqrt(eps) z, z ~ N(0, I). The two callers differ only in
settings, so each is a parameter here:

* ``step_size`` multiplies the energy gradient (eps / 2 in Eq. 5; the image code's own ``step_size``, with no
  1/2 factor, docs/original-code.md section 5);
* ``noise_std`` is the standard deviation of the added noise (sqrt(eps) in Eq. 5, decoupled in the image code);
* ``noise_first``: the image code adds the noise first and takes the gradient at the noisy point; Eq. 5 takes
  the gradient at the current point and adds the noise after the step;
* ``grad_clip``: optional element-wise clip of the gradient to [-grad_clip, grad_clip] (the image code);
* ``clamp``: optional range the state is clamped to after every step (the image code: pixels in [0, 1]).

One step, repeated ``steps`` times (the noise is drawn first either way, so one generator gives one stream):

    z ~ N(0, I)
    x <- x + noise_std z                       (noise_first)
    G <- clip(grad_fn(x), -grad_clip, grad_clip)
    x <- x - step_size G
    x <- x + noise_std z                       (not noise_first)
    x <- clamp(x, *clamp)

No Metropolis correction. The energy gradient is the caller's ``grad_fn(x) -> dE/dx`` (same shape as x), so
the caller keeps what only it knows: autograd through a frozen network under autocast (febm.images.sampler)
or a closed form (the 1-D study's quadratic energy, febm.toy.train).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

EnergyGradient = Callable[[Tensor], Tensor]


def langevin_dynamics(
    x: Tensor,
    grad_fn: EnergyGradient,
    *,
    steps: int,
    step_size: float,
    noise_std: float,
    noise_first: bool,
    grad_clip: float | None = None,
    clamp: tuple[float, float] | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Run ``steps`` Langevin steps from ``x``; returns the final state (the caller decides on detaching).

    ``x`` is not modified in place. The noise has x's shape, dtype and device and comes from ``generator``
    (the global RNG when None).
    """
    for _ in range(steps):
        noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        if noise_first:
            x = x + noise_std * noise
        gradient = grad_fn(x)
        if grad_clip is not None:
            gradient = gradient.clamp(-grad_clip, grad_clip)
        x = x - step_size * gradient
        if not noise_first:
            x = x + noise_std * noise
        if clamp is not None:
            x = x.clamp_(*clamp)
    return x
