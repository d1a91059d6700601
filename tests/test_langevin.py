"""The one Langevin implementation (Eq. 5) and its two variants: the step order, clip, clamp, noise stream."""

from __future__ import annotations

import math

import torch

from febm.langevin import langevin_dynamics


def _quadratic_gradient(mu: float, sigma: float):
    """dE/dx of E(x) = (x - mu)^2 / (2 sigma^2)."""
    return lambda x: (x - mu) / sigma**2


def test_eq5_as_written_takes_the_gradient_before_the_noise():
    """noise_first=False is x <- x - eps/2 dE/dx(x) + sqrt(eps) z, step by step, with z from the generator."""
    eps, mu, sigma = 0.1, 0.3, 1.7
    x0 = torch.linspace(-2.0, 2.0, 7, dtype=torch.float64)
    got = langevin_dynamics(
        x0,
        _quadratic_gradient(mu, sigma),
        steps=3,
        step_size=eps / 2,
        noise_std=math.sqrt(eps),
        noise_first=False,
        generator=torch.Generator().manual_seed(4),
    )
    generator, x = torch.Generator().manual_seed(4), x0.clone()
    for _ in range(3):
        z = torch.randn(x.shape, generator=generator, dtype=torch.float64)
        x = x - eps / 2 * (x - mu) / sigma**2 + math.sqrt(eps) * z
    torch.testing.assert_close(got, x, rtol=0, atol=1e-15)
    assert torch.equal(x0, torch.linspace(-2.0, 2.0, 7, dtype=torch.float64))  # the start is not modified


def test_noise_first_takes_the_gradient_at_the_noisy_point_then_clips_and_clamps():
    seen: list[torch.Tensor] = []

    def gradient(x: torch.Tensor) -> torch.Tensor:
        seen.append(x.clone())
        return torch.tensor([5.0, -0.004, -5.0, 0.0])

    x0 = torch.tensor([0.5, 0.5, 0.999, 0.001])
    got = langevin_dynamics(
        x0,
        gradient,
        steps=1,
        step_size=1.0,
        noise_std=1e-3,
        noise_first=True,
        grad_clip=0.01,
        clamp=(0.0, 1.0),
        generator=torch.Generator().manual_seed(0),
    )
    z = torch.randn(4, generator=torch.Generator().manual_seed(0))
    noisy = x0 + 1e-3 * z
    torch.testing.assert_close(seen[0], noisy, rtol=0, atol=0)
    expected = (noisy - torch.tensor([0.01, -0.004, -0.01, 0.0])).clamp(0.0, 1.0)
    torch.testing.assert_close(got, expected, rtol=0, atol=0)
    assert got[2] == 1.0  # pushed past the top of the range and clamped


def test_eq5_chain_samples_the_energy_with_the_known_discretisation_bias():
    """On E = (x - mu)^2 / (2 s^2) the unadjusted chain is AR(1): stationary mean mu and variance
    s^2 / (1 - eps / (4 s^2)). A sign or factor-2 error in the drift or noise misses it by far more."""
    eps, mu, sigma = 0.2, -0.4, 0.8
    chains = torch.zeros(20_000, dtype=torch.float64)
    out = langevin_dynamics(
        chains,
        _quadratic_gradient(mu, sigma),
        steps=300,
        step_size=eps / 2,
        noise_std=math.sqrt(eps),
        noise_first=False,
        generator=torch.Generator().manual_seed(1),
    )
    variance = sigma**2 / (1 - eps / (4 * sigma**2))
    assert abs(float(out.mean()) - mu) < 4 * math.sqrt(variance / out.numel())
    assert abs(float(out.var()) / variance - 1) < 0.03  # sd of the ratio: sqrt(2 / 20,000) = 0.01
