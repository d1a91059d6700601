"""H's objective with the log-ratio estimate t capped from above (Section 6.1 training only).

With the quadratic energy of Eq. 20 and a bounded (tanh) H, t = H + E grows like E in the tails of q,
so E_q[c(t)] is infinite for Pearson chi^2 (c = e^{2t} - 1 and E_q[e^{2E}] diverges) and for KL, and
its Monte-Carlo estimate is extremely heavy-tailed. The few model samples far in q's tails, where no
bounded H can cancel E, then dominate H's gradient and drag t down everywhere (measured: mean t on the
data falls by 7 within 500 steps and training stalls). Evaluating g and c at min(t, cap) removes the
gradient of those samples, and the pointwise objective p g(min(t, cap)) - q c(min(t, cap)) still has
its maximiser at t* = log p/q wherever t* < cap, with no degenerate maximiser (unlike clamping the
exponents inside g and c separately, which makes t -> +-inf everywhere beat the true bound).

The cap is set in c-space (``ratio_cap_for``): t_cap = c^{-1}(conjugate_cap), and only divergences whose
c grows without bound are capped (KL, Pearson chi^2, squared Hellinger, alpha > 0). For the default mixture
and conjugate_cap = 50 that is t_cap = 1.97 for Pearson (max log p/q at its optimum: 1.31), 3.91 for KL
(1.53), 4.25 for alpha = 0.9 (1.57), 7.86 for squared Hellinger (1.78): no optimum moves.

The E step (Eq. 18) uses the same capped divergence: with the uncapped one, the few model samples whose
t = H + E is wildly over-estimated (bounded H in q's tails) dominate E's gradient for Pearson chi^2 and
pull sigma far below its optimum (measured: sigma 1.44 instead of 1.93).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from febm.divergences import Divergence

# A cap above this log-ratio (a density ratio of e^30) is never reached and only costs time.
MAX_RATIO_CAP = 30.0


def ratio_cap_for(divergence: Divergence, conjugate_cap: float) -> float | None:
    """The t at which c(t) reaches ``conjugate_cap``, or None when c stays below it (c bounded above).

    Capping in c-space gives one hyper-parameter for every divergence: only those whose conjugate term
    grows without bound (KL, Pearson chi^2, alpha > 0, ...) are capped, at t = c^{-1}(conjugate_cap).
    """

    def c(t: float) -> float:
        return float(divergence.c(torch.tensor(t, dtype=torch.float64)))

    hi = MAX_RATIO_CAP
    if not c(hi) > conjugate_cap:  # c stays below the cap wherever t could plausibly be: no cap
        return None
    lo = -60.0
    if c(lo) >= conjugate_cap:
        raise ValueError(f"c(t) of {divergence.name} exceeds conjugate_cap={conjugate_cap} everywhere")
    for _ in range(200):  # c is increasing (c' = e^t g' > 0): bisection
        mid = 0.5 * (lo + hi)
        if c(mid) > conjugate_cap:
            hi = mid
        else:
            lo = mid
    return lo if math.isfinite(lo) else None


class RatioCapped(Divergence):
    """``base`` with g(t) and c(t) evaluated at min(t, cap)."""

    def __init__(self, base: Divergence, cap: float) -> None:
        super().__init__(base.exp_clamp)
        self.base, self.cap = base, float(cap)
        self.name = base.name
        self.f_second_derivative_at_one = base.f_second_derivative_at_one

    def __repr__(self) -> str:
        return f"RatioCapped({self.base!r}, cap={self.cap})"

    def f(self, u: Tensor) -> Tensor:
        return self.base.f(u)

    def f_prime(self, u: Tensor) -> Tensor:
        return self.base.f_prime(u)

    def conjugate(self, s: Tensor) -> Tensor:
        return self.base.conjugate(s)

    def g(self, t: Tensor) -> Tensor:
        return self.base.g(t.clamp(max=self.cap))

    def c(self, t: Tensor) -> Tensor:
        return self.base.c(t.clamp(max=self.cap))

    # The base's derivatives at min(t, cap), zero above the cap (at t = cap itself the one from below).
    def g_prime(self, t: Tensor) -> Tensor:
        return self.base.g_prime(t.clamp(max=self.cap)).mul_(t <= self.cap)

    def c_prime(self, t: Tensor) -> Tensor:
        return self.base.c_prime(t.clamp(max=self.cap)).mul_(t <= self.cap)
