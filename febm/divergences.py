"""The f-divergence family (paper Section 2.1) and the two composites f-EBM needs.

Every divergence is a generator f: [0, inf) -> R, convex with f(1) = 0. The f-EBM objective
(Eq. 14) never uses f directly; it uses, as functions of the estimated log density ratio
t = H(x) + E(x),

    g(t) = f'(e^t)            applied to data samples,
    c(t) = f*(f'(e^t))        applied to model samples,

and c(t) = e^t g(t) - f(e^t). Subclasses override ``g`` and ``c`` with forms that stay finite in
float32 and float64 wherever the true value is representable (expm1/softplus instead of
exp(...) - 1 and log(1 + exp(...))).

``exp_clamp`` reproduces the original code's habit of clamping the argument of every exponential in
g and c to [-exp_clamp, exp_clamp] (5 for images). It changes the objective, so it is off by default
and is a per-run setting.

Their derivatives g'(t) = e^t f''(e^t), c'(t) = e^t g'(t) (``g_prime``, ``c_prime``: closed forms beside g and c,
autograd by default; tests/test_toy_fast_path.py) give the 1-D study's fast engine its per-sample Eq. 18 gradients.

Add a divergence by subclassing :class:`Divergence` with ``f`` and ``f_prime`` (and ``conjugate``)
and decorating it with ``@register("name")``; ``g``, ``c`` and their derivatives have generic defaults.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from febm.validation import UnknownDivergenceError, check_alpha, parse_alpha_name

LOG2 = math.log(2.0)

_REGISTRY: dict[str, Callable[..., Divergence]] = {}


class Divergence:
    """One member of the f-divergence family; methods act element-wise on tensors."""

    name: str = "divergence"
    f_second_derivative_at_one: float = 1.0

    def __init__(self, exp_clamp: float | None = None) -> None:
        if exp_clamp is not None and not (exp_clamp > 0 and math.isfinite(exp_clamp)):
            raise ValueError(f"exp_clamp must be a positive finite number or None, got {exp_clamp!r}")
        self.exp_clamp = exp_clamp

    def __repr__(self) -> str:
        clamp = "" if self.exp_clamp is None else f", exp_clamp={self.exp_clamp}"
        return f"{type(self).__name__}(name={self.name!r}{clamp})"

    # --- the generator -------------------------------------------------------------------------
    def f(self, u: Tensor) -> Tensor:
        raise NotImplementedError

    def f_prime(self, u: Tensor) -> Tensor:
        raise NotImplementedError

    def conjugate(self, s: Tensor) -> Tensor:
        """Fenchel conjugate f*(s) = sup_{u >= 0} s*u - f(u); +inf where the sup is unbounded."""
        raise NotImplementedError

    # --- composites used by the objective -------------------------------------------------------
    def g(self, t: Tensor) -> Tensor:
        """f'(e^t)."""
        return self.f_prime(self._exp(t))

    def c(self, t: Tensor) -> Tensor:
        """f*(f'(e^t)) = e^t g(t) - f(e^t)."""
        u = self._exp(t)
        return u * self.f_prime(u) - self.f(u)

    # --- their derivatives in t (the fast engine's per-sample gradients of Eq. 18) ------------------
    def g_prime(self, t: Tensor) -> Tensor:
        """dg/dt element-wise; this default differentiates :meth:`g` by autograd (closed forms override)."""
        return _elementwise_derivative(self.g, t)

    def c_prime(self, t: Tensor) -> Tensor:
        """dc/dt element-wise; this default differentiates :meth:`c` by autograd (closed forms override)."""
        return _elementwise_derivative(self.c, t)

    # --- helpers honouring the optional clamp --------------------------------------------------
    def _exp_slope(self, scale: float, t: Tensor) -> Tensor:
        """d/dt exp(clamp(scale t)) / scale: exp(scale t), 0 where the clamp is active; at its kinks the inner
        one-sided value (torch 2.x autograd takes 0 there: both are subgradients)."""
        z = scale * t
        if self.exp_clamp is None:
            return torch.exp(z)
        inside = (z >= -self.exp_clamp) & (z <= self.exp_clamp)
        return torch.exp(z.clamp(-self.exp_clamp, self.exp_clamp)).mul_(inside)

    def _clamp(self, z: Tensor) -> Tensor:
        return z if self.exp_clamp is None else z.clamp(-self.exp_clamp, self.exp_clamp)

    def _exp(self, z: Tensor) -> Tensor:
        return torch.exp(self._clamp(z))

    def _expm1(self, z: Tensor) -> Tensor:
        return torch.expm1(self._clamp(z))


def _elementwise_derivative(function: Callable[[Tensor], Tensor], t: Tensor) -> Tensor:
    """d function(t_i) / d t_i for an element-wise ``function``, by autograd (graph-free result)."""
    with torch.enable_grad():
        leaf = t.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(function(leaf).sum(), leaf)
    return grad


def register(name: str) -> Callable[[type[Divergence]], type[Divergence]]:
    def decorate(cls: type[Divergence]) -> type[Divergence]:
        if name in _REGISTRY:
            raise ValueError(f"divergence {name!r} registered twice")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return decorate


def softplus(x: Tensor) -> Tensor:
    """log(1 + e^x) to full precision (torch's softplus returns x itself above 20)."""
    return torch.clamp(x, min=0) + torch.log1p(torch.exp(-torch.abs(x)))


def _inf_like(x: Tensor) -> Tensor:
    return torch.full_like(x, math.inf)


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


def available_divergences() -> list[str]:
    """Registered names, plus the alpha family pattern."""
    return [*sorted(_REGISTRY), "alpha_<a> (any real a other than 0 and 1, e.g. alpha_-0.5)"]


def get_divergence(name: str, exp_clamp: float | None = None) -> Divergence:
    """The divergence called ``name``: a registered name or ``alpha_<a>``."""
    if name in _REGISTRY:
        return _REGISTRY[name](exp_clamp=exp_clamp)
    alpha = parse_alpha_name(name)
    if alpha is not None:
        return Alpha(alpha, exp_clamp=exp_clamp)
    raise UnknownDivergenceError(
        f"unknown divergence {name!r}; valid names: {', '.join(available_divergences())}"
    )


def is_valid_divergence_name(name: str) -> bool:
    try:
        get_divergence(name)
    except UnknownDivergenceError:
        return False
    return True
