"""The concrete f-divergences (paper Section 2.1): KL, reverse KL, Jensen-Shannon, squared Hellinger,
Pearson and Neyman chi^2 (registered by name) and the alpha family (``alpha_<a>``, built on demand).

Each overrides ``g``/``c`` (and their derivatives) with forms that stay finite in float32 and float64; see
``febm/divergences.py`` for the conventions and ``febm/divergence_base.py`` for the shared helpers.
"""

from __future__ import annotations

import torch
from torch import Tensor

from febm.divergence_base import LOG2, Divergence, _inf_like, register, softplus
from febm.validation import check_alpha


@register("kl")
class KL(Divergence):
    """f(u) = u log u: D_f(p||q) = KL(p||q), the maximum-likelihood divergence."""

    f_second_derivative_at_one = 1.0

    def f(self, u: Tensor) -> Tensor:
        return torch.xlogy(u, u)

    def f_prime(self, u: Tensor) -> Tensor:
        return torch.log(u) + 1.0

    def conjugate(self, s: Tensor) -> Tensor:
        return torch.exp(s - 1.0)

    def g(self, t: Tensor) -> Tensor:
        return 1.0 + t

    def c(self, t: Tensor) -> Tensor:
        return self._exp(t)

    def g_prime(self, t: Tensor) -> Tensor:
        return torch.ones_like(t)

    def c_prime(self, t: Tensor) -> Tensor:
        return self._exp_slope(1.0, t)


@register("reverse_kl")
class ReverseKL(Divergence):
    """f(u) = -log u: D_f(p||q) = KL(q||p)."""

    f_second_derivative_at_one = 1.0

    def f(self, u: Tensor) -> Tensor:
        return -torch.log(u)

    def f_prime(self, u: Tensor) -> Tensor:
        return -1.0 / u

    def conjugate(self, s: Tensor) -> Tensor:
        inside = s < 0
        safe = torch.where(inside, s, -torch.ones_like(s))
        return torch.where(inside, -1.0 - torch.log(-safe), _inf_like(s))

    def g(self, t: Tensor) -> Tensor:
        return -self._exp(-t)

    def c(self, t: Tensor) -> Tensor:
        return t - 1.0

    def g_prime(self, t: Tensor) -> Tensor:
        return self._exp_slope(-1.0, t)

    def c_prime(self, t: Tensor) -> Tensor:
        return torch.ones_like(t)


@register("jensen_shannon")
class JensenShannon(Divergence):
    """f(u) = u log u - (u + 1) log((u + 1)/2): D_f = 2 JSD(p, q), as in the original code."""

    f_second_derivative_at_one = 0.5

    def f(self, u: Tensor) -> Tensor:
        return torch.xlogy(u, u) - (u + 1.0) * torch.log((u + 1.0) / 2.0)

    def f_prime(self, u: Tensor) -> Tensor:
        return torch.log(2.0 * u / (u + 1.0))

    def conjugate(self, s: Tensor) -> Tensor:
        inside = s < LOG2
        safe = torch.where(inside, s, torch.zeros_like(s))
        return torch.where(inside, -torch.log(2.0 - torch.exp(safe)), _inf_like(s))

    def _softplus(self, t: Tensor) -> Tensor:
        # The original clamps only the exponential inside log(1 + exp(t)); keep that quirk when asked.
        return softplus(t) if self.exp_clamp is None else torch.log1p(self._exp(t))

    def g(self, t: Tensor) -> Tensor:
        if self.exp_clamp is None:
            return LOG2 - softplus(-t)
        return LOG2 + t - self._softplus(t)

    def c(self, t: Tensor) -> Tensor:
        return self._softplus(t) - LOG2

    # f''(u) = 1 / (u (u + 1)): g' = sigmoid(-t), c' = sigmoid(t); the clamped quirk by autograd.
    def g_prime(self, t: Tensor) -> Tensor:
        return torch.sigmoid(-t) if self.exp_clamp is None else super().g_prime(t)

    def c_prime(self, t: Tensor) -> Tensor:
        return torch.sigmoid(t) if self.exp_clamp is None else super().c_prime(t)


@register("squared_hellinger")
class SquaredHellinger(Divergence):
    """f(u) = (sqrt(u) - 1)^2."""

    f_second_derivative_at_one = 0.5

    def f(self, u: Tensor) -> Tensor:
        return (torch.sqrt(u) - 1.0) ** 2

    def f_prime(self, u: Tensor) -> Tensor:
        return 1.0 - torch.rsqrt(u)

    def conjugate(self, s: Tensor) -> Tensor:
        inside = s < 1
        safe = torch.where(inside, s, torch.zeros_like(s))
        return torch.where(inside, safe / (1.0 - safe), _inf_like(s))

    def g(self, t: Tensor) -> Tensor:
        return -self._expm1(-t / 2.0)

    def c(self, t: Tensor) -> Tensor:
        return self._expm1(t / 2.0)

    def g_prime(self, t: Tensor) -> Tensor:
        return self._exp_slope(-0.5, t).mul_(0.5)

    def c_prime(self, t: Tensor) -> Tensor:
        return self._exp_slope(0.5, t).mul_(0.5)


@register("pearson_x2")
class PearsonChi2(Divergence):
    """f(u) = (u - 1)^2."""

    f_second_derivative_at_one = 2.0

    def f(self, u: Tensor) -> Tensor:
        return (u - 1.0) ** 2

    def f_prime(self, u: Tensor) -> Tensor:
        return 2.0 * (u - 1.0)

    def conjugate(self, s: Tensor) -> Tensor:
        # For s below f'(0) = -2 the supremum over u >= 0 sits at u = 0, giving -f(0) = -1.
        return torch.where(s >= -2.0, s * s / 4.0 + s, -torch.ones_like(s))

    def g(self, t: Tensor) -> Tensor:
        return 2.0 * self._expm1(t)

    def c(self, t: Tensor) -> Tensor:
        return self._expm1(2.0 * t)

    def g_prime(self, t: Tensor) -> Tensor:
        return self._exp_slope(1.0, t).mul_(2.0)

    def c_prime(self, t: Tensor) -> Tensor:
        return self._exp_slope(2.0, t).mul_(2.0)


@register("neyman_x2")
class NeymanChi2(Divergence):
    """f(u) = (1 - u)^2 / u."""

    f_second_derivative_at_one = 2.0

    def f(self, u: Tensor) -> Tensor:
        return (1.0 - u) ** 2 / u

    def f_prime(self, u: Tensor) -> Tensor:
        return 1.0 - 1.0 / (u * u)

    def conjugate(self, s: Tensor) -> Tensor:
        inside = s < 1
        safe = torch.where(inside, s, torch.zeros_like(s))
        return torch.where(inside, 2.0 - 2.0 * torch.sqrt(1.0 - safe), _inf_like(s))

    def g(self, t: Tensor) -> Tensor:
        return -self._expm1(-2.0 * t)

    def c(self, t: Tensor) -> Tensor:
        return -2.0 * self._expm1(-t)

    def g_prime(self, t: Tensor) -> Tensor:
        return self._exp_slope(-2.0, t).mul_(2.0)

    def c_prime(self, t: Tensor) -> Tensor:
        return self._exp_slope(-1.0, t).mul_(2.0)


class Alpha(Divergence):
    """f(u) = (u^a - 1 - a(u - 1)) / (a(a - 1)), a not in {0, 1}; a = -1 is Neyman chi^2 / 2."""

    f_second_derivative_at_one = 1.0

    def __init__(self, alpha: float, exp_clamp: float | None = None) -> None:
        super().__init__(exp_clamp)
        self.alpha = check_alpha(alpha)
        self.name = f"alpha_{_format_alpha(self.alpha)}"

    def f(self, u: Tensor) -> Tensor:
        a = self.alpha
        return (u**a - 1.0 - a * (u - 1.0)) / (a * (a - 1.0))

    def f_prime(self, u: Tensor) -> Tensor:
        a = self.alpha
        return (u ** (a - 1.0) - 1.0) / (a - 1.0)

    def conjugate(self, s: Tensor) -> Tensor:
        a = self.alpha
        base = 1.0 + (a - 1.0) * s
        inside = base > 0
        safe = torch.where(inside, base, torch.ones_like(base))
        value = (safe ** (a / (a - 1.0)) - 1.0) / a
        # Outside the range of f': unbounded for a < 1, the u = 0 corner -f(0) = -1/a for a > 1.
        outside = _inf_like(s) if a < 1 else torch.full_like(s, -1.0 / a)
        return torch.where(inside, value, outside)

    def g(self, t: Tensor) -> Tensor:
        a = self.alpha
        return self._expm1((a - 1.0) * t) / (a - 1.0)

    def c(self, t: Tensor) -> Tensor:
        a = self.alpha
        return self._expm1(a * t) / a

    def g_prime(self, t: Tensor) -> Tensor:
        return self._exp_slope(self.alpha - 1.0, t)

    def c_prime(self, t: Tensor) -> Tensor:
        return self._exp_slope(self.alpha, t)


def _format_alpha(alpha: float) -> str:
    return str(int(alpha)) if alpha == int(alpha) else repr(alpha)
