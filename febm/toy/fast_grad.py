"""Per-sample gradients of the f-EBM losses, written out for speed (the fast engine).

The losses themselves live in :mod:`febm.objectives`; this module only differentiates them with
respect to the per-sample network outputs, which for a batch of 1000 costs a handful of vector
operations instead of an autograd graph of ~40 nodes. ``tests/test_toy_fast_path.py`` checks every
function here against autograd through ``variational_loss`` / ``energy_loss`` for every divergence, so
Eq. 18 keeps its single definition.

With t = H + E, g(t) = f'(e^t), c(t) = f*(f'(e^t)) = e^t g(t) - f(e^t):

    g'(t) = e^t f''(e^t),    c'(t) = e^t g'(t).

``variational_loss`` = -(mean g(t+) - mean c(t-)) + l2 (mean H+^2 + mean H-^2), so
    dL/dH+_i = (-g'(t+_i) + 2 l2 H+_i) / n,     dL/dH-_j = (c'(t-_j) + 2 l2 H-_j) / m.
``energy_loss`` = mean g(t+) + [mean(E- sg(c-)) - mean(E-) sg(mean c-)] - mean c(t-) + l2 (...), so
    dL/dE+_i = (g'(t+_i) + 2 l2 E+_i) / n,      dL/dE-_j = (c(t-_j) - mean c - c'(t-_j) + 2 l2 E-_j) / m.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from febm.divergences import (
    KL,
    Alpha,
    Divergence,
    JensenShannon,
    NeymanChi2,
    PearsonChi2,
    ReverseKL,
    SquaredHellinger,
)

Derivative = Callable[[Tensor], Tensor]


def _closed_form(divergence: Divergence) -> tuple[Derivative, Derivative] | None:
    """(g', c') in closed form for the registered generators (f'' written as a function of t)."""
    if isinstance(divergence, KL):  # f'' = 1/u
        return (lambda t: torch.ones_like(t)), torch.exp
    if isinstance(divergence, ReverseKL):  # f'' = 1/u^2
        return (lambda t: torch.exp(-t)), (lambda t: torch.ones_like(t))
    if isinstance(divergence, JensenShannon):  # f'' = 1/(u (u + 1))
        return (lambda t: torch.sigmoid(-t)), torch.sigmoid
    if isinstance(divergence, SquaredHellinger):  # f'' = u^(-3/2) / 2
        return (lambda t: 0.5 * torch.exp(-0.5 * t)), (lambda t: 0.5 * torch.exp(0.5 * t))
    if isinstance(divergence, PearsonChi2):  # f'' = 2
        return (lambda t: 2.0 * torch.exp(t)), (lambda t: 2.0 * torch.exp(2.0 * t))
    if isinstance(divergence, NeymanChi2):  # f'' = 2 / u^3
        return (lambda t: 2.0 * torch.exp(-2.0 * t)), (lambda t: 2.0 * torch.exp(-t))
    if isinstance(divergence, Alpha):  # f'' = u^(a - 2)
        a = divergence.alpha
        return (lambda t: torch.exp((a - 1.0) * t)), (lambda t: torch.exp(a * t))
    return None


def _by_autograd(function: Callable[[Tensor], Tensor]) -> Derivative:
    def derivative(t: Tensor) -> Tensor:
        with torch.enable_grad():
            leaf = t.detach().requires_grad_(True)
            (grad,) = torch.autograd.grad(function(leaf).sum(), leaf)
        return grad

    return derivative


def output_derivatives(divergence: Divergence) -> tuple[Derivative, Derivative]:
    """(g', c') for ``divergence``: closed forms where known and unclamped, else elementwise autograd."""
    closed = None if divergence.exp_clamp is not None else _closed_form(divergence)
    if closed is not None:
        return closed
    return _by_autograd(divergence.g), _by_autograd(divergence.c)


def variational_output_grad(
    derivatives: tuple[Derivative, Derivative],
    t_pos: Tensor,
    t_neg: Tensor,
    h_pos: Tensor,
    h_neg: Tensor,
    l2: float,
) -> Tensor:
    """d variational_loss / d(H+, H-), concatenated."""
    g_prime, c_prime = derivatives
    grad_pos = g_prime(t_pos).neg_()
    grad_neg = c_prime(t_neg)
    if l2:
        grad_pos.add_(h_pos, alpha=2.0 * l2)
        grad_neg.add_(h_neg, alpha=2.0 * l2)
    return torch.cat([grad_pos.div_(t_pos.numel()), grad_neg.div_(t_neg.numel())])


def energy_output_grad(
    divergence: Divergence,
    derivatives: tuple[Derivative, Derivative],
    t_pos: Tensor,
    t_neg: Tensor,
    e_pos: Tensor,
    e_neg: Tensor,
    l2: float,
) -> Tensor:
    """d energy_loss / d(E+, E-), concatenated (the covariance term's stop-gradients respected)."""
    g_prime, c_prime = derivatives
    grad_pos = g_prime(t_pos)
    c_neg = divergence.c(t_neg)
    grad_neg = c_neg.sub_(c_neg.mean()).sub_(c_prime(t_neg))
    if l2:
        grad_pos.add_(e_pos, alpha=2.0 * l2)
        grad_neg.add_(e_neg, alpha=2.0 * l2)
    return torch.cat([grad_pos.div_(t_pos.numel()), grad_neg.div_(t_neg.numel())])


class FlatAdam:
    """Adam (Kingma & Ba; torch.optim.Adam's defaults, no weight decay) on one flat tensor, in place."""

    def __init__(self, param: Tensor, lr: float, betas: tuple[float, float], eps: float = 1e-8) -> None:
        self.param, self.lr, self.betas, self.eps = param, lr, betas, eps
        self.exp_avg = torch.zeros_like(param)
        self.exp_avg_sq = torch.zeros_like(param)
        self.steps = 0

    def set_lr(self, lr: float) -> None:
        self.lr = lr

    def step(self, grad: Tensor) -> None:
        beta1, beta2 = self.betas
        self.steps += 1
        self.exp_avg.lerp_(grad, 1.0 - beta1)
        self.exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1.0 - beta2)
        bias1 = 1.0 - beta1**self.steps
        bias2_sqrt = (1.0 - beta2**self.steps) ** 0.5
        denom = self.exp_avg_sq.sqrt().div_(bias2_sqrt).add_(self.eps)
        self.param.addcdiv_(self.exp_avg, denom, value=-self.lr / bias1)

    def state_dict(self) -> dict:
        return {"exp_avg": self.exp_avg.clone(), "exp_avg_sq": self.exp_avg_sq.clone(), "steps": self.steps}

    def load_state_dict(self, state: dict) -> None:
        self.exp_avg.copy_(state["exp_avg"])
        self.exp_avg_sq.copy_(state["exp_avg_sq"])
        self.steps = int(state["steps"])
