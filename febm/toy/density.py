"""The learned density ratio exp(H + E) (Eq. 16) and bias correction by rejection sampling (Section 6.1).

Model samples x ~ q = N(mu, sigma^2) (exact, as in the paper) are accepted with probability
r(x) / M, r = exp(H(x) + E(x)) the learned estimate of p/q and M the largest r over the proposals,
so the accepted samples follow q r / E_q[r] ~ p. The distance of the samples to the data density is
measured exactly against the mixture's CDF: the Kolmogorov-Smirnov statistic sup |F_n - F| and the
Wasserstein-1 distance integral |F_n - F| dx.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from febm.quadrature import GaussianMixture, gaussian_energy, gaussian_log_pdf, simpson_grid
from febm.toy.network import module_from_flat


def mixture_cdf(mixture: GaussianMixture, x: Tensor) -> Tensor:
    total = torch.zeros_like(x, dtype=torch.float64)
    for w, m, s in zip(mixture.weights, mixture.means, mixture.stds, strict=True):
        total += w * 0.5 * torch.erfc(-(x.double() - m) / (s * math.sqrt(2.0)))
    return total


def ks_distance(samples: Tensor, mixture: GaussianMixture) -> float:
    """sup_x |F_n(x) - F(x)| (exact: checked on both sides of every sample)."""
    x = torch.sort(samples.double()).values
    n = x.numel()
    cdf = mixture_cdf(mixture, x)
    upper = torch.arange(1, n + 1, dtype=torch.float64) / n - cdf
    lower = cdf - torch.arange(0, n, dtype=torch.float64) / n
    return float(torch.maximum(upper.max(), lower.max()))


def w1_distance(samples: Tensor, mixture: GaussianMixture, nodes: int = 20001) -> float:
    """integral |F_n(x) - F(x)| dx by Simpson quadrature over the data support and the samples."""
    x_sorted = torch.sort(samples.double()).values
    lo, hi = mixture.support(10.0)
    lo, hi = min(lo, float(x_sorted[0]) - 1.0), max(hi, float(x_sorted[-1]) + 1.0)
    grid, weights = simpson_grid(lo, hi, nodes)
    empirical = torch.searchsorted(x_sorted, grid, right=True).double() / x_sorted.numel()
    return float(((empirical - mixture_cdf(mixture, grid)).abs() * weights).sum())


def learned_log_ratio(h_flat: Tensor, hidden: int, mu: float, sigma: float, x: Tensor) -> Tensor:
    """t(x) = H(x) + E(x), the learned log p/q (Eq. 16), in float64."""
    module = module_from_flat(h_flat.double(), hidden)
    x = x.double()
    with torch.no_grad():  # in chunks: 100,000 proposals x 64 units would cost ~200 MB at once
        h = torch.cat([module(chunk[:, None]).squeeze(1) for chunk in x.split(8192)])
    return h + gaussian_energy(x, mu, sigma)


def exact_log_ratio(mixture: GaussianMixture, mu: float, sigma: float, x: Tensor) -> Tensor:
    return mixture.log_pdf(x.double()) - gaussian_log_pdf(x.double(), mu, sigma)


@dataclass
class RejectionResult:
    accepted: Tensor
    proposals: Tensor
    acceptance_rate: float

    def to_json(self, mixture: GaussianMixture, prefix: str) -> dict[str, float]:
        return {
            f"{prefix}_acceptance_rate": self.acceptance_rate,
            f"{prefix}_accepted": int(self.accepted.numel()),
            f"{prefix}_ks": ks_distance(self.accepted, mixture),
            f"{prefix}_w1": w1_distance(self.accepted, mixture),
        }


def rejection_sample(log_ratio: Tensor, proposals: Tensor, generator: torch.Generator) -> RejectionResult:
    """Accept proposal i with probability exp(log_ratio_i - max log_ratio)."""
    accept_probability = torch.exp(log_ratio - log_ratio.max())
    keep = torch.rand(proposals.numel(), generator=generator, dtype=torch.float64) < accept_probability
    return RejectionResult(proposals[keep], proposals, float(keep.double().mean()))


def density_ratio_report(
    mixture: GaussianMixture,
    h_flat: Tensor,
    hidden: int,
    mu: float,
    sigma: float,
    proposals: int,
    seed: int,
) -> dict[str, Any]:
    """Rejection sampling with the learned and with the exact ratio, and the learned ratio's error."""
    generator = torch.Generator().manual_seed(seed)
    x = mu + sigma * torch.randn(proposals, generator=generator, dtype=torch.float64)
    learned = rejection_sample(learned_log_ratio(h_flat, hidden, mu, sigma, x), x, generator)
    exact = rejection_sample(exact_log_ratio(mixture, mu, sigma, x), x, generator)
    grid, weights = simpson_grid(*mixture.support(4.0), 4001)
    error = learned_log_ratio(h_flat, hidden, mu, sigma, grid) - exact_log_ratio(mixture, mu, sigma, grid)
    p = torch.exp(mixture.log_pdf(grid))
    return {
        "proposals": proposals,
        "model_ks": ks_distance(x, mixture),
        "model_w1": w1_distance(x, mixture),
        **learned.to_json(mixture, "corrected"),
        **exact.to_json(mixture, "oracle"),
        # E_p |t - log p/q|: how well H + E recovers the log density ratio on the data
        "log_ratio_mean_abs_error_under_p": float((p * error.abs() * weights).sum()),
    }
