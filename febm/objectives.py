"""Training objectives shared by the 1-D and the image trainers.

Notation: E is the energy (q_theta(x) ∝ exp(-E(x))), H the variational function, t = H + E the
estimated log density ratio log p/q (Eq. 16). Tensors ``*_pos`` are evaluated on data samples,
``*_neg`` on model samples, which must already be detached from the sampler.

* :func:`variational_loss`  - H's loss: minus the bound of Eq. 14 (Theorem 2), maximised over omega.
* :func:`energy_loss`       - E's loss: its gradient is the unbiased estimator of Eq. 18 (Theorem 3).
* :func:`contrastive_divergence_loss` - the KL baseline of Section 2.3 (Eq. 8).
* :func:`dual_critic_loss`, :func:`dual_energy_loss` - the dual-form estimator of Theorem 1
  (Section 3.1.2), kept so that its failure can be shown.

Every loss returns an :class:`Objective` whose named terms let a trainer say which term went
non-finite.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from febm.divergences import Divergence
from febm.errors import FebmError


class NonFiniteLossError(FebmError, FloatingPointError):
    """A loss term became NaN or infinite."""


@dataclass
class Objective:
    """A scalar loss to minimise and the named terms it is made of (for logging and checks)."""

    total: Tensor
    terms: dict[str, Tensor] = field(default_factory=dict)

    def check_finite(self, step: int | None = None) -> None:
        """Raise :class:`NonFiniteLossError` naming the first non-finite term."""
        for name, value in {**self.terms, "total": self.total}.items():
            if not torch.isfinite(value).all():
                where = "" if step is None else f" at step {step}"
                raise NonFiniteLossError(
                    f"loss term {name!r} is {value.detach().flatten()[0].item()}{where}; "
                    "lower the learning rate, enable exp_clamp, or pick a divergence whose "
                    "conjugate is bounded on your data"
                )

    def scalars(self) -> dict[str, float]:
        return {name: float(value.detach()) for name, value in self.terms.items()}


def l2_penalty(pos: Tensor, neg: Tensor) -> Tensor:
    """mean(pos^2) + mean(neg^2): the original code's output-magnitude regulariser."""
    return pos.pow(2).mean() + neg.pow(2).mean()


def fenchel_bound(divergence: Divergence, t_pos: Tensor, t_neg: Tensor) -> Tensor:
    """Monte-Carlo estimate of E_p[g(t)] - E_q[c(t)], the lower bound on D_f(p||q) of Theorem 2."""
    return divergence.g(t_pos).mean() - divergence.c(t_neg).mean()


def variational_loss(
    divergence: Divergence,
    h_pos: Tensor,
    e_pos: Tensor,
    h_neg: Tensor,
    e_neg: Tensor,
    l2: float = 0.0,
) -> Objective:
    """Loss for H: -(Eq. 14) + l2 * (mean H_pos^2 + mean H_neg^2); no gradient reaches E."""
    bound = fenchel_bound(divergence, h_pos + e_pos.detach(), h_neg + e_neg.detach())
    penalty = l2_penalty(h_pos, h_neg)
    total = -bound + l2 * penalty
    return Objective(total, {"bound": bound, "h_l2": penalty})


def energy_loss(
    divergence: Divergence,
    e_pos: Tensor,
    h_pos: Tensor,
    e_neg: Tensor,
    h_neg: Tensor,
    l2: float = 0.0,
) -> Objective:
    """Loss for E whose gradient is the unbiased estimator of Eq. 18.

    grad L = E_p[grad g(t)]                                   (data term)
           + E_q[c(t) grad E] - E_q[grad E] E_q[c(t)]         (covariance term: grad of q_theta)
           - E_q[grad c(t)]                                   (direct term: E inside t on q's samples)

    The stop-gradients are what make the surrogate's gradient equal to Eq. 18; no gradient reaches H.
    """
    t_pos = h_pos.detach() + e_pos
    t_neg = h_neg.detach() + e_neg
    data_term = divergence.g(t_pos).mean()
    c_neg = divergence.c(t_neg)
    c_weight = c_neg.detach()
    covariance_term = (e_neg * c_weight).mean() - e_neg.mean() * c_weight.mean()
    direct_term = c_neg.mean()
    penalty = l2_penalty(e_pos, e_neg)
    total = data_term + covariance_term - direct_term + l2 * penalty
    return Objective(
        total,
        {
            "data_term": data_term,
            "covariance_term": covariance_term,
            "direct_term": direct_term,
            "bound": (data_term - direct_term).detach(),
            "e_l2": penalty,
        },
    )


def contrastive_divergence_loss(e_pos: Tensor, e_neg: Tensor, l2: float = 0.0) -> Objective:
    """mean E(data) - mean E(model samples) + l2 penalty: the gradient of Eq. 8 (maximum likelihood)."""
    energy_gap = e_pos.mean() - e_neg.mean()
    penalty = l2_penalty(e_pos, e_neg)
    return Objective(energy_gap + l2 * penalty, {"energy_gap": energy_gap, "e_l2": penalty})


def dual_critic_loss(divergence: Divergence, v_pos: Tensor, v_neg: Tensor, l2: float = 0.0) -> Objective:
    """Critic loss of the dual form (Eq. 12) with T = f'(exp(v)), so f*(T) = c(v) stays finite.

    ``v`` is the critic's estimate of log p/q (t in Eq. 14 without E); l2 as for H in f-EBM.
    """
    bound = fenchel_bound(divergence, v_pos, v_neg)
    penalty = l2_penalty(v_pos, v_neg)
    return Objective(-bound + l2 * penalty, {"bound": bound, "v_l2": penalty})


def dual_energy_loss(divergence: Divergence, e_neg: Tensor, v_neg: Tensor, l2: float = 0.0) -> Objective:
    """Energy surrogate of Theorem 1: gradient E_q[grad E f*(T)] - E_q[grad E] E_q[f*(T)].

    The data never touch E here, which is why this estimator fails in practice (Section 3.1.2); the
    penalty (l2 * mean E(x-)^2, on the model samples only, so it adds no data signal) keeps the
    energies bounded as in the other methods.
    """
    reward = divergence.c(v_neg).detach()
    covariance_term = (e_neg * reward).mean() - e_neg.mean() * reward.mean()
    penalty = e_neg.pow(2).mean()
    return Objective(covariance_term + l2 * penalty, {"covariance_term": covariance_term, "e_l2": penalty})
