"""The stationary point a local method reaches: gradient descent on the exact objective from the run's start.

f-EBM is a local method: it follows (a noisy estimate of) the gradient of D_f(p || N(mu, sigma^2)) from
(toy.train.init_mu, init_sigma). Where the divergence has several local minima (reverse KL and the alpha < 0
family are mode-seeking and can lock onto one component), the run can only be expected to end at the
minimum whose basin holds the start, not at the global optimum of :func:`febm.toy.optimum.find_optimum`.
This module computes that point from the same quadrature objective (:func:`febm.toy.optimum.gaussian_divergence`,
no second derivation): deterministic descent in the trained parameters (mu, sigma), with steps small enough
(at most ``FLOW_STEP`` times the current sigma) to follow the gradient flow rather than jump between basins,
until the Hessian is positive definite and the Newton step is small; then the damped Newton method of
``optimum.py`` polishes it on the full grid.

The target is a stationary point of D_f itself, not of the ratio-capped objective the runs train
(febm/toy/tails.py): where the cap moves the minimum (log p/q above t_cap near it), a run that ends at the
capped objective's minimum is reported as off target. The capped objective only serves to enter the
region where D_f is finite when the start lies outside it (:func:`stationary_target`).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from febm.divergences import Divergence, get_divergence
from febm.quadrature import GaussianMixture
from febm.toy.optimum import (
    COVER_STDS,
    RESOLUTION,
    NoOptimumError,
    gaussian_divergence,
    minimise_over_gaussians,
    sigma_bounds_for,
)
from febm.toy.tails import RatioCapped, ratio_cap_for

# Largest move of one descent step, as a fraction of the current sigma (in mu and in sigma): small enough
# to stay in the basin the gradient flow is in.
FLOW_STEP = 0.05
# Hand over to Newton once its step (in units of sigma) is below this and the Hessian is positive definite.
NEWTON_HANDOVER = 0.02
MAX_FLOW_STEPS = 20000
# Two points closer than this (relative to the mixture's standard deviation) are the same minimum.
SAME_POINT = 1e-5


@dataclass(frozen=True)
class StationaryPoint:
    divergence: str
    init: tuple[float, float]
    mu: float | None
    sigma: float | None
    value: float | None
    flow_steps: int
    gradient_norm: float | None
    reason: str = ""  # why there is no point (mu is None), else ""
    entry_steps: int = 0  # steps on the trained objective before D_f became finite (an infinite start)

    def to_json(self) -> dict[str, Any]:
        return {
            "divergence": self.divergence,
            "init_mu": self.init[0],
            "init_sigma": self.init[1],
            "mu": self.mu,
            "sigma": self.sigma,
            "divergence_value": self.value,
            "flow_steps": self.flow_steps,
            "gradient_norm": self.gradient_norm,
            "reason": self.reason,
            "entry_steps": self.entry_steps,
            "method": "gradient descent on the quadrature objective in (mu, sigma), then damped Newton",
        }


@contextmanager
def single_thread() -> Iterator[None]:
    """The quadrature works on a few thousand nodes: intra-op threads only add overhead (measured 50x)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _value_and_grad(divergence, mixture, point: Tensor, resolution: int) -> tuple[float, Tensor]:
    point = point.detach().requires_grad_(True)
    value = gaussian_divergence(divergence, mixture, point[0], point[1], resolution, COVER_STDS)
    if not math.isfinite(float(value.detach())):
        return math.inf, torch.zeros(2, dtype=torch.float64)
    (grad,) = torch.autograd.grad(value, point)
    return float(value.detach()), grad.detach()


def _newton_step(divergence, mixture, point: Tensor, resolution: int) -> Tensor | None:
    """The Newton step in (mu, sigma) where the Hessian is positive definite, else None."""
    point = point.detach().requires_grad_(True)
    value = gaussian_divergence(divergence, mixture, point[0], point[1], resolution, COVER_STDS)
    (grad,) = torch.autograd.grad(value, point, create_graph=True)
    if not grad.requires_grad:  # the gradient does not depend on the point (a linear piece): no curvature
        return None
    hessian = torch.stack([torch.autograd.grad(grad[i], point, retain_graph=True)[0] for i in range(2)])
    if not bool(torch.isfinite(hessian).all()) or float(torch.linalg.eigvalsh(hessian).min()) <= 0:
        return None
    return -torch.linalg.solve(hessian.detach(), grad.detach())


def trained_divergence(
    name: str, exp_clamp: float | None = None, conjugate_cap: float | None = None
) -> Divergence:
    """The divergence whose objective a run descends: ``name`` with toy.train's exp_clamp and ratio cap.

    With the cap (febm/toy/tails.py) the objective is the capped bound at its maximiser,
    integral of p g(min(t*, t_cap)) - q c(min(t*, t_cap)): equal to D_f wherever log p/q < t_cap, and finite
    where D_f is not (Pearson chi^2 at sigma = 1 on the paper's mixture), as the run's estimates are.
    """
    base = get_divergence(name, exp_clamp=exp_clamp)
    cap = None if conjugate_cap is None else ratio_cap_for(base, conjugate_cap)
    return base if cap is None else RatioCapped(base, cap)


def descend_from(
    divergence: str | Divergence,
    mixture: GaussianMixture,
    init: tuple[float, float],
    resolution: int = RESOLUTION // 4,
    entry: Divergence | None = None,
) -> StationaryPoint:
    """The local minimum that gradient descent on D_f(p || N(mu, sigma^2)) reaches from ``init``.

    ``divergence``: a name (the plain f-divergence) or a :class:`Divergence`. Where D_f is infinite at
    ``init`` (Pearson chi^2 at sigma = 1 on the paper's mixture) there is no gradient to follow; with
    ``entry`` (the run's own objective, :func:`trained_divergence`, finite there as the run's estimates are)
    the descent first follows ``entry`` until D_f is finite, then D_f itself. Returns a point with
    ``mu = None`` and the ``reason`` when D_f stays infinite or the descent runs off to sigma -> 0 / infinity.
    """
    if isinstance(divergence, str):
        divergence = get_divergence(divergence)
    with single_thread():
        return _descend(divergence, mixture, init, resolution, entry)


def stationary_target(name: str, mixture: GaussianMixture, train: dict[str, Any]) -> StationaryPoint:
    """Table 5's target for a local method: descent on the exact D_f from toy.train's start, entered through
    the run's (capped) objective where D_f is infinite at the start."""
    init = (float(train["init_mu"]), float(train["init_sigma"]))
    entry = trained_divergence(name, train["exp_clamp"], train["conjugate_cap"])
    return descend_from(name, mixture, init, entry=entry)


def _is_finite(divergence, mixture, point: Tensor, resolution: int) -> bool:
    return math.isfinite(float(gaussian_divergence(divergence, mixture, point[0], point[1], resolution)))


def _flow(divergence, mixture, point: Tensor, resolution: int, until=None) -> tuple[Tensor, int, str]:
    """Gradient descent on ``divergence`` from ``point``: (end point, steps, outcome), the outcome "converged"
    (Newton hand-over or no further decrease), "stopped" (``until(point)`` became true) or "runs off to ..."."""
    value, grad = _value_and_grad(divergence, mixture, point, resolution)
    bounds = sigma_bounds_for(mixture)
    rate = 1.0  # step = -rate * grad, capped at FLOW_STEP * sigma per coordinate; adapted by backtracking
    for steps in range(1, MAX_FLOW_STEPS + 1):
        if until is not None and until(point):
            return point, steps - 1, "stopped"
        sigma = float(point[1])
        if steps % 10 == 1 or float(grad.abs().max()) * rate < NEWTON_HANDOVER * sigma:
            newton = _newton_step(divergence, mixture, point, resolution)
            if newton is not None and float(newton.abs().max()) < NEWTON_HANDOVER * sigma:
                return point, steps - 1, "converged"
        step = -rate * grad
        largest = float(step.abs().max())
        if largest > FLOW_STEP * sigma:
            step = step * (FLOW_STEP * sigma / largest)
        for _ in range(60):  # Armijo backtracking: every step downhill
            trial = point + step
            trial_value, trial_grad = (
                _value_and_grad(divergence, mixture, trial, resolution) if trial[1] > 0 else (math.inf, grad)
            )
            if math.isfinite(trial_value) and trial_value <= value + 1e-4 * float(grad @ step):
                break
            step = step * 0.5
            rate *= 0.5
        else:
            return point, steps - 1, "converged"  # no decrease representable: at a minimum to rounding
        point, value, grad = trial, trial_value, trial_grad
        rate *= 1.5
        if not bounds[0] < float(point[1]) < bounds[1]:
            return (
                point,
                steps,
                "runs off to " + ("sigma -> 0" if float(point[1]) <= bounds[0] else "sigma -> infinity"),
            )
    return point, MAX_FLOW_STEPS, "converged"


def _descend(divergence, mixture, init, resolution, entry) -> StationaryPoint:
    name = divergence.name
    point = torch.tensor(init, dtype=torch.float64)
    entry_steps = 0
    if not _is_finite(divergence, mixture, point, resolution):
        if entry is None:
            return StationaryPoint(
                name, init, None, None, None, 0, None, "the divergence is infinite at the start"
            )
        # The run's own (capped) objective is finite here: follow its descent into the region where D_f is.
        point, entry_steps, outcome = _flow(
            entry, mixture, point, resolution, until=lambda p: _is_finite(divergence, mixture, p, resolution)
        )
        if outcome != "stopped":
            return StationaryPoint(
                name,
                init,
                None,
                None,
                None,
                entry_steps,
                None,
                "the divergence is infinite at the start and along the trained objective's descent from it",
                entry_steps,
            )
    point, steps, outcome = _flow(divergence, mixture, point, resolution)
    steps += entry_steps
    bounds = sigma_bounds_for(mixture)
    if outcome.startswith("runs off"):
        return StationaryPoint(name, init, None, None, None, steps, None, f"descent {outcome}", entry_steps)
    # Polish with the damped Newton of optimum.py (on (mu, log sigma), the full grid): it only moves
    # downhill from a point already inside the basin.
    lo, hi = mixture.support(1.0)
    try:
        mu, sigma, value, _, gradient_norm = minimise_over_gaussians(
            lambda p: gaussian_divergence(divergence, mixture, p[0], torch.exp(p[1]), RESOLUTION, COVER_STDS),
            (float(point[0]), math.log(float(point[1]))),
            name,
            bounds,
            1e3 * max(1.0, abs(lo), abs(hi)),
        )
    except NoOptimumError as error:
        return StationaryPoint(name, init, None, None, None, steps, None, str(error), entry_steps)
    return StationaryPoint(name, init, mu, sigma, value, steps, gradient_norm, "", entry_steps)


def same_point(a: tuple[float, float], b: tuple[float, float], scale: float) -> bool:
    """Two (mu, sigma) pairs are the same minimum (to quadrature accuracy), relative to ``scale``."""
    return max(abs(a[0] - b[0]), abs(a[1] - b[1])) <= SAME_POINT * max(scale, 1e-12)
