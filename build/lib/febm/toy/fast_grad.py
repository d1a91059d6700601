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


def _exp_derivative(scale: float, clamp: float | None) -> Derivative:
    """t -> d/dt exp(clamp(scale * t)) / scale = exp(scale * t), zero where the clamp is active.

    torch.clamp passes the gradient on the closed interval [-clamp, clamp]; so does this.
    """
    if clamp is None:
        return lambda t: torch.exp(scale * t)

    def derivative(t: Tensor) -> Tensor:
        z = scale * t
        inside = (z >= -clamp) & (z <= clamp)
        return torch.exp(z.clamp(-clamp, clamp)).mul_(inside)

    return derivative


def _scaled(factor: float, derivative: Derivative) -> Derivative:
    return lambda t: derivative(t).mul_(factor)


def _closed_form(divergence: Divergence) -> tuple[Derivative, Derivative] | None:
    """(g', c') in closed form for the registered generators, honouring ``exp_clamp``."""
    clamp = divergence.exp_clamp
    if isinstance(divergence, KL):  # g = 1 + t, c = exp(t)
        return (lambda t: torch.ones_like(t)), _exp_derivative(1.0, clamp)
    if isinstance(divergence, ReverseKL):  # g = -exp(-t), c = t - 1
        return _exp_derivative(-1.0, clamp), (lambda t: torch.ones_like(t))
    if isinstance(divergence, JensenShannon):  # f'' = 1/(u (u + 1)): g' = sigmoid(-t), c' = sigmoid(t)
        if clamp is None:
            return (lambda t: torch.sigmoid(-t)), torch.sigmoid
        return None  # the clamped JS keeps the original's quirk: differentiate it generically
    if isinstance(divergence, SquaredHellinger):  # g = -expm1(-t/2), c = expm1(t/2)
        return _scaled(0.5, _exp_derivative(-0.5, clamp)), _scaled(0.5, _exp_derivative(0.5, clamp))
    if isinstance(divergence, PearsonChi2):  # g = 2 expm1(t), c = expm1(2t)
        return _scaled(2.0, _exp_derivative(1.0, clamp)), _scaled(2.0, _exp_derivative(2.0, clamp))
    if isinstance(divergence, NeymanChi2):  # g = -expm1(-2t), c = -2 expm1(-t)
        return _scaled(2.0, _exp_derivative(-2.0, clamp)), _scaled(2.0, _exp_derivative(-1.0, clamp))
    if isinstance(divergence, Alpha):  # g = expm1((a-1)t)/(a-1), c = expm1(a t)/a
        a = divergence.alpha
        return _exp_derivative(a - 1.0, clamp), _exp_derivative(a, clamp)
    return None


def _by_autograd(function: Callable[[Tensor], Tensor]) -> Derivative:
    def derivative(t: Tensor) -> Tensor:
        with torch.enable_grad():
            leaf = t.detach().requires_grad_(True)
            (grad,) = torch.autograd.grad(function(leaf).sum(), leaf)
        return grad

    return derivative


def output_derivatives(divergence: Divergence) -> tuple[Derivative, Derivative]:
    """(g', c') for ``divergence``: closed forms where known, else elementwise autograd."""
    from febm.toy.tails import RatioCapped

    if isinstance(divergence, RatioCapped):  # g(min(t, cap)): no gradient above the cap (clamp's rule)
        g_prime, c_prime = output_derivatives(divergence.base)
        cap = divergence.cap
        return (lambda t: g_prime(t.clamp(max=cap)).mul_(t <= cap)), (
            lambda t: c_prime(t.clamp(max=cap)).mul_(t <= cap)
        )
    closed = _closed_form(divergence)
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
    inside: Tensor | None = None,
) -> Tensor:
    """d variational_loss / d(H+, H-), concatenated; ``inside`` masks samples whose t was clamped."""
    g_prime, c_prime = derivatives
    grad_pos = g_prime(t_pos).neg_()
    grad_neg = c_prime(t_neg)
    if inside is not None:
        grad_pos.mul_(inside[: t_pos.numel()])
        grad_neg.mul_(inside[t_pos.numel() :])
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


def clip_to_rms(
    grad: Tensor, exp_avg_sq: Tensor, steps: int, beta2: float, clip: float, floor: float
) -> Tensor:
    """Clip each element to +-(clip * sqrt(v_hat) + floor), v_hat Adam's bias-corrected second moment.

    The original image code's custom Adam does this (docs/original-code.md §6) with clip = 3, floor = 0.1.
    It stops one heavy-tailed gradient (Pearson chi^2 far from its optimum) from inflating v and freezing
    the parameters for thousands of steps; near the optimum the gradients are light-tailed and the clip
    is almost never active.
    """
    if clip <= 0:
        return grad
    if steps == 0:
        return grad.clamp(-floor, floor)
    bound = exp_avg_sq.div(1.0 - beta2**steps).sqrt_().mul_(clip).add_(floor)
    return torch.minimum(torch.maximum(grad, -bound), bound)


class FlatAdam:
    """Adam (torch.optim.Adam's update, no weight decay) on one flat tensor in place, with clip_to_rms."""

    def __init__(
        self,
        param: Tensor,
        lr: float,
        betas: tuple[float, float],
        clip: float = 0.0,
        floor: float = 0.0,
        eps: float = 1e-8,
    ) -> None:
        self.param, self.lr, self.betas, self.eps = param, lr, betas, eps
        self.clip, self.floor = clip, floor
        self.exp_avg = torch.zeros_like(param)
        self.exp_avg_sq = torch.zeros_like(param)
        self.steps = 0

    def set_lr(self, lr: float) -> None:
        self.lr = lr

    def step(self, grad: Tensor) -> None:
        beta1, beta2 = self.betas
        grad = clip_to_rms(grad, self.exp_avg_sq, self.steps, beta2, self.clip, self.floor)
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
