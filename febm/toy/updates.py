"""One iteration's parameter updates of the 1-D study, for each engine and method.

* f-EBM, fast engine: the per-sample gradients of ``variational_loss`` (H) and ``energy_loss`` (E, Eq. 18)
  from :mod:`febm.toy.fast_grad`, then the chain rule through H (:class:`febm.toy.network.FlatMLP`) and
  through the quadratic energy (:func:`energy_parameter_gradient`) by hand; the loss values are computed only
  to log them or to name a non-finite term.
* f-EBM, autograd engine: the textbook torch loop over the same losses.
* CD (Eq. 8) and exact maximum likelihood: two parameters, plain autograd.

:class:`ToyUpdates` is the update half of :class:`febm.toy.train.ToyTrainer`, which owns the state these
methods read and write (declared below).
"""

from __future__ import annotations

import torch
from torch import Tensor

from febm.divergences import Divergence
from febm.objectives import (
    NonFiniteLossError,
    Objective,
    contrastive_divergence_loss,
    energy_loss,
    variational_loss,
)
from febm.optim import ClippedAdam
from febm.quadrature import gaussian_energy as energy
from febm.toy.fast_grad import energy_output_grad, variational_output_grad
from febm.toy.network import FlatMLP
from febm.toy.settings import TrainSettings


def energy_parameter_gradient(x: Tensor, mu: Tensor, sigma: Tensor, grad_e: Tensor) -> Tensor:
    """d loss/d(mu, sigma) from d loss/dE(x_i): dE/dmu = -(x - mu)/sigma^2, dE/dsigma = -(x - mu)^2/sigma^3."""
    centred = x - mu
    return torch.stack([-(grad_e * centred).sum() / sigma**2, -(grad_e * centred.square()).sum() / sigma**3])


def maximum_likelihood_loss(e_pos: Tensor, sigma: Tensor) -> Objective:
    """Exact negative log-likelihood of N(mu, sigma^2) up to a constant: mean E + log Z, log Z = log sigma."""
    nll = e_pos.mean() + torch.log(sigma)
    return Objective(nll, {"nll": nll})


class ToyUpdates:
    """The H and E updates of one iteration; state (parameters, optimisers, settings) lives on the trainer."""

    method: str
    settings: TrainSettings
    train_divergence: Divergence
    theta: Tensor
    omega: Tensor | None
    module: torch.nn.Sequential | None
    grad_buffer: Tensor
    opt_h: ClippedAdam
    opt_e: ClippedAdam
    last_objective: float

    def _febm_step_fast(self, x_pos: Tensor, x_neg: Tensor, step: int, update_energy: bool = True) -> None:
        n_pos, l2 = x_pos.numel(), self.settings.l2
        x = torch.cat([x_pos, x_neg])
        mu, sigma = self.theta.detach()
        e = energy(x, mu, sigma)
        net = FlatMLP(self.omega, self.settings.hidden_units)
        h, cache = net.forward(x)
        # H step: d variational_loss / dH per sample, then backprop through the MLP by hand.
        t = h + e
        grad_h = variational_output_grad(
            self.train_divergence, t[:n_pos], t[n_pos:], h[:n_pos], h[n_pos:], l2
        )
        if self._needs_objective(step, grad_h):
            objective = variational_loss(
                self.train_divergence, h[:n_pos], e[:n_pos], h[n_pos:], e[n_pos:], l2
            )
            self._check(objective, step, "H")
            self.last_objective = float(objective.terms["bound"])
        self.opt_h.step_with(net.backward(x, cache, grad_h, self.grad_buffer))
        if not update_energy:
            return
        # E step: H recomputed after its update (alternating, Algorithm 1) or reused (simultaneous).
        if self.settings.updates == "alternating":
            h, _ = net.forward(x, keep=False)
            t = h + e
        grad_e = energy_output_grad(self.train_divergence, t[:n_pos], t[n_pos:], e[:n_pos], e[n_pos:], l2)
        if self._needs_objective(step, grad_e, logging=False):
            objective = energy_loss(self.train_divergence, e[:n_pos], h[:n_pos], e[n_pos:], h[n_pos:], l2)
            self._check(objective, step, "E")
        self.opt_e.step_with(energy_parameter_gradient(x, mu, sigma, grad_e))

    def _needs_objective(self, step: int, grad: Tensor, logging: bool = True) -> bool:
        """The loss value is only needed to log it, or to name the failing term when a gradient is not finite."""
        logged = logging and (step + 1) % self.settings.log_every == 0
        return logged or not bool(torch.isfinite(grad).all())

    @staticmethod
    def _check(objective: Objective, step: int, network: str) -> None:
        objective.check_finite(step)
        if not all(bool(torch.isfinite(v).all()) for v in objective.terms.values()):
            raise NonFiniteLossError(f"the gradient of the {network} loss is not finite at step {step}")

    def _febm_step_autograd(
        self, x_pos: Tensor, x_neg: Tensor, step: int, update_energy: bool = True
    ) -> None:
        """The plain loop: nn.Module forward/backward for both updates."""
        module, theta = self.module, self.theta
        x_pos_col, x_neg_col = x_pos[:, None], x_neg[:, None]
        e_pos, e_neg = energy(x_pos, theta[0], theta[1]), energy(x_neg, theta[0], theta[1])
        h_pos, h_neg = module(x_pos_col).squeeze(1), module(x_neg_col).squeeze(1)
        objective = variational_loss(self.train_divergence, h_pos, e_pos, h_neg, e_neg, self.settings.l2)
        objective.check_finite(step)
        self.last_objective = float(objective.terms["bound"].detach())
        self.opt_h.zero_grad()
        objective.total.backward()
        self.opt_h.step()
        if not update_energy:
            return
        if self.settings.updates == "alternating":
            with torch.no_grad():
                h_pos, h_neg = module(x_pos_col).squeeze(1), module(x_neg_col).squeeze(1)
        else:
            h_pos, h_neg = h_pos.detach(), h_neg.detach()
        e_pos, e_neg = energy(x_pos, theta[0], theta[1]), energy(x_neg, theta[0], theta[1])
        objective = energy_loss(self.train_divergence, e_pos, h_pos, e_neg, h_neg, self.settings.l2)
        objective.check_finite(step)
        self.opt_e.zero_grad()
        objective.total.backward()
        self.opt_e.step()

    def _baseline_step(self, x_pos: Tensor, x_neg: Tensor, step: int) -> None:
        """CD (Eq. 8) or exact maximum likelihood: two parameters, so plain autograd is cheap enough."""
        theta = self.theta.detach().requires_grad_(True)
        e_pos = energy(x_pos, theta[0], theta[1])
        if self.method == "cd":
            objective = contrastive_divergence_loss(
                e_pos, energy(x_neg, theta[0], theta[1]), self.settings.l2
            )
        else:
            objective = maximum_likelihood_loss(e_pos, theta[1])
        objective.check_finite(step)
        self.last_objective = float(objective.total.detach())
        (grad,) = torch.autograd.grad(objective.total, theta)
        self.opt_e.step_with(grad)
