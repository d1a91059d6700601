"""Exact 1-D quantities by quadrature: Gaussian mixtures and D_f(p||q) for known densities.

Used for the exact optima of the 1-D study and for testing the estimators against ground truth.
Everything is a float64 torch tensor so gradients with respect to (mu, sigma) come from autograd.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from febm.divergences import Divergence
from febm.validation import InvalidMixtureError as InvalidMixtureError  # re-exported for callers
from febm.validation import check_mixture

LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)


def standard_normal(
    n: int, generator: torch.Generator | None = None, dtype=torch.float32, stratified: bool = False
) -> Tensor:
    """n draws from N(0, 1); ``stratified``: one draw from each of the n equal-probability strata.

    Stratified draws are z_i = Phi^{-1}((i + U_i) / n) with U_i ~ U(0, 1) independent: every z_i is marginally
    N(0, 1), so a batch mean of any function stays unbiased, but the batch always holds its share of both tails
    (one draw beyond the 1/n quantile on each side) instead of a Poisson number of them. The order is by stratum:
    shuffle before any use that depends on position.
    """
    if not stratified:
        return torch.randn(n, generator=generator, dtype=dtype)
    u = (torch.arange(n, dtype=torch.float64) + torch.rand(n, generator=generator, dtype=torch.float64)) / n
    return torch.special.ndtri(u).to(dtype)


def gaussian_log_pdf(x: Tensor, mean: Tensor | float, std: Tensor | float) -> Tensor:
    std = torch.as_tensor(std, dtype=x.dtype)
    return -0.5 * ((x - mean) / std) ** 2 - torch.log(std) - LOG_SQRT_2PI


def gaussian_energy(x: Tensor, mu: Tensor | float, sigma: Tensor | float) -> Tensor:
    """E(x) = (x - mu)^2 / (2 sigma^2), the 1-D study's energy (Eq. 20; no log-partition term: f-EBM never
    needs it). The one definition: training, the density ratio and the Theorem 5 field all use it."""
    return (x - mu) ** 2 / (2 * sigma**2)


@dataclass(frozen=True)
class GaussianMixture:
    """sum_k weights[k] N(means[k], stds[k]^2); validated on construction."""

    weights: tuple[float, ...]
    means: tuple[float, ...]
    stds: tuple[float, ...]

    def __init__(self, weights: Sequence[float], means: Sequence[float], stds: Sequence[float]):
        weights, means, stds = check_mixture(weights, means, stds)
        object.__setattr__(self, "weights", weights)
        object.__setattr__(self, "means", means)
        object.__setattr__(self, "stds", stds)

    @classmethod
    def paper(cls) -> GaussianMixture:
        """Section 6.1: 0.33 N(-1, 0.25^2) + 0.67 N(2, (sqrt 2)^2)."""
        return cls((0.33, 0.67), (-1.0, 2.0), (0.25, math.sqrt(2.0)))

    def log_pdf(self, x: Tensor) -> Tensor:
        parts = [
            math.log(w) + gaussian_log_pdf(x, m, s)
            for w, m, s in zip(self.weights, self.means, self.stds, strict=True)
        ]
        return torch.logsumexp(torch.stack(parts), dim=0)

    @property
    def mean(self) -> float:
        return sum(w * m for w, m in zip(self.weights, self.means, strict=True))

    @property
    def std(self) -> float:
        second = sum(w * (s * s + m * m) for w, m, s in zip(self.weights, self.means, self.stds, strict=True))
        return math.sqrt(second - self.mean**2)

    def component_counts(self, n: int) -> list[int]:
        """Deterministic per-component counts summing to n, as the original code's batches."""
        counts = [math.floor(w * n) for w in self.weights]
        for k in sorted(range(len(counts)), key=lambda k: -(self.weights[k] * n - counts[k]))[
            : n - sum(counts)
        ]:
            counts[k] += 1
        return counts

    def sample(
        self,
        n: int,
        generator: torch.Generator | None = None,
        dtype=torch.float32,
        stratified: bool = False,
    ) -> Tensor:
        """n draws with the deterministic component counts; ``stratified``: see :func:`standard_normal`."""
        pieces = [
            m + s * standard_normal(k, generator, dtype, stratified)
            for k, m, s in zip(self.component_counts(n), self.means, self.stds, strict=True)
        ]
        return torch.cat(pieces)

    def support(self, width: float = 12.0) -> tuple[float, float]:
        lo = min(m - width * s for m, s in zip(self.means, self.stds, strict=True))
        hi = max(m + width * s for m, s in zip(self.means, self.stds, strict=True))
        return lo, hi


def simpson_grid(lo: float, hi: float, n: int = 8001) -> tuple[Tensor, Tensor]:
    """Nodes and composite-Simpson weights on [lo, hi] (n odd), float64."""
    if n % 2 == 0:
        n += 1
    x = torch.linspace(lo, hi, n, dtype=torch.float64)
    h = (hi - lo) / (n - 1)
    w = torch.full((n,), 2.0, dtype=torch.float64)
    w[1::2] = 4.0
    w[0] = w[-1] = 1.0
    return x, w * h / 3.0


def variational_bound_exact(
    divergence: Divergence, log_p: Tensor, log_q: Tensor, t: Tensor, weights: Tensor
) -> Tensor:
    """Integral of p g(t) - q c(t): Eq. 14's objective for a given log-ratio estimate t on the grid."""
    p, q = torch.exp(log_p), torch.exp(log_q)
    integrand = p * divergence.g(t) - q * divergence.c(t)
    # Where both densities underflow the integrand is 0 * (finite or inf); the limit is 0.
    integrand = torch.where((p == 0) & (q == 0), torch.zeros_like(integrand), integrand)
    return (integrand * weights).sum()


def f_divergence_exact(divergence: Divergence, log_p: Tensor, log_q: Tensor, weights: Tensor) -> Tensor:
    """D_f(p||q) on a grid: the bound at its maximiser t = log p - log q (Theorem 2)."""
    return variational_bound_exact(divergence, log_p, log_q, log_p - log_q, weights)
