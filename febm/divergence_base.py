"""The f-divergence base class, its registry and the numerically careful helpers the family shares.

:class:`Divergence` holds the generic composites g(t) = f'(e^t), c(t) = f*(f'(e^t)) and their autograd derivatives,
plus the optional ``exp_clamp`` helpers; ``@register("name")`` adds a subclass to the registry that
:func:`febm.divergences.get_divergence` looks names up in. The concrete members live in
``febm/divergence_family.py``; import everything through ``febm.divergences``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

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
