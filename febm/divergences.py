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

This module is the public face: the base class and registry live in ``febm/divergence_base.py``, the concrete
members in ``febm/divergence_family.py``; import them all from here.
"""

from __future__ import annotations

from febm.divergence_base import _REGISTRY, LOG2, Divergence, register, softplus
from febm.divergence_family import (
    KL,
    Alpha,
    JensenShannon,
    NeymanChi2,
    PearsonChi2,
    ReverseKL,
    SquaredHellinger,
)
from febm.validation import UnknownDivergenceError, parse_alpha_name

__all__ = [
    "KL",
    "LOG2",
    "Alpha",
    "Divergence",
    "JensenShannon",
    "NeymanChi2",
    "PearsonChi2",
    "ReverseKL",
    "SquaredHellinger",
    "UnknownDivergenceError",
    "available_divergences",
    "get_divergence",
    "is_valid_divergence_name",
    "register",
    "softplus",
]


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
