"""Torch-free checks shared by the config loader and the numerical code.

The Snakefile validates configs before planning; importing torch there would cost seconds per
``snakemake -n``, so everything a config check needs lives here, without torch.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

from febm.errors import FebmError

ALPHA_PATTERN = re.compile(r"^alpha_(?P<alpha>[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?)$")


class UnknownDivergenceError(FebmError, ValueError):
    """A divergence name that is not registered, or an invalid alpha."""


class InvalidMixtureError(FebmError, ValueError):
    """Mixture parameters that do not define a probability density."""


# How tables, figures and the report write the named divergences (alpha_<a> is written from its a).
DIVERGENCE_DISPLAY = {
    "kl": "KL",
    "reverse_kl": "Reverse KL",
    "jensen_shannon": "Jensen-Shannon",
    "squared_hellinger": "Squared Hellinger",
    "pearson_x2": "Pearson χ²",
    "neyman_x2": "Neyman χ²",
}


def parse_alpha_name(name: object) -> float | None:
    """The a of ``alpha_<a>``, or None if ``name`` is not of that form."""
    match = ALPHA_PATTERN.match(name) if isinstance(name, str) else None
    return float(match.group("alpha")) if match else None


def check_alpha(alpha: float) -> float:
    if not math.isfinite(alpha) or alpha in (0.0, 1.0):
        raise UnknownDivergenceError(
            f"alpha must be a finite number other than 0 and 1 (those are the KL limits; "
            f"use 'reverse_kl' or 'kl'), got {alpha!r}"
        )
    return float(alpha)


def check_mixture(
    weights: Sequence[float], means: Sequence[float], stds: Sequence[float]
) -> tuple[tuple[float, ...], tuple[float, ...], tuple[float, ...]]:
    """Validated (weights, means, stds) of a 1-D Gaussian mixture, as float tuples."""
    try:
        weights, means, stds = tuple(map(float, weights)), tuple(map(float, means)), tuple(map(float, stds))
    except (TypeError, ValueError):
        raise InvalidMixtureError("mixture weights, means and stds must be lists of numbers") from None
    if not (len(weights) == len(means) == len(stds)) or not weights:
        raise InvalidMixtureError(
            f"mixture needs the same non-zero number of weights, means and stds; got "
            f"{len(weights)}, {len(means)}, {len(stds)}"
        )
    if any(not math.isfinite(v) for v in weights + means + stds):
        raise InvalidMixtureError("mixture weights, means and stds must be finite numbers")
    if any(w <= 0 for w in weights):
        raise InvalidMixtureError(f"mixture weights must be positive, got {list(weights)}")
    if any(s <= 0 for s in stds):
        raise InvalidMixtureError(f"mixture stds must be positive, got {list(stds)}")
    if abs(sum(weights) - 1.0) > 1e-6:
        raise InvalidMixtureError(f"mixture weights must sum to 1, got {sum(weights):.6g}")
    return weights, means, stds
