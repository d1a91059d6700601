"""Per-sample gradients of the f-EBM losses, written out for speed (the fast engine).

The losses themselves live in :mod:`febm.objectives`; this module only differentiates them with
respect to the per-sample network outputs, which for a batch of 1000 costs a handful of vector
operations instead of an autograd graph of ~40 nodes. The derivatives g' and c' are the divergence's own
(``Divergence.g_prime`` / ``c_prime`` in :mod:`febm.divergences`, capped by ``RatioCapped``); the chain rule
through the two losses is all that is written here. ``tests/test_toy_fast_path.py`` checks every function
here against autograd through ``variational_loss`` / ``energy_loss`` for every divergence, so Eq. 18 keeps
its single definition.

With t = H + E, g(t) = f'(e^t), c(t) = f*(f'(e^t)) = e^t g(t) - f(e^t):

    g'(t) = e^t f''(e^t),    c'(t) = e^t g'(t).

``variational_loss`` = -(mean g(t+) - mean c(t-)) + l2 (mean H+^2 + mean H-^2), so
    dL/dH+_i = (-g'(t+_i) + 2 l2 H+_i) / n,     dL/dH-_j = (c'(t-_j) + 2 l2 H-_j) / m.
``energy_loss`` = mean g(t+) + [mean(E- sg(c-)) - mean(E-) sg(mean c-)] - mean c(t-) + l2 (...), so
    dL/dE+_i = (g'(t+_i) + 2 l2 E+_i) / n,      dL/dE-_j = (c(t-_j) - mean c - c'(t-_j) + 2 l2 E-_j) / m.
"""

from __future__ import annotations

import torch
from torch import Tensor

from febm.divergences import Divergence


def variational_output_grad(
    divergence: Divergence, t_pos: Tensor, t_neg: Tensor, h_pos: Tensor, h_neg: Tensor, l2: float
) -> Tensor:
    """d variational_loss / d(H+, H-), concatenated."""
    grad_pos = divergence.g_prime(t_pos).neg_()
    grad_neg = divergence.c_prime(t_neg)
    if l2:
        grad_pos.add_(h_pos, alpha=2.0 * l2)
        grad_neg.add_(h_neg, alpha=2.0 * l2)
    return torch.cat([grad_pos.div_(t_pos.numel()), grad_neg.div_(t_neg.numel())])


def energy_output_grad(
    divergence: Divergence, t_pos: Tensor, t_neg: Tensor, e_pos: Tensor, e_neg: Tensor, l2: float
) -> Tensor:
    """d energy_loss / d(E+, E-), concatenated (the covariance term's stop-gradients respected)."""
    grad_pos = divergence.g_prime(t_pos)
    c_neg = divergence.c(t_neg)
    grad_neg = c_neg.sub_(c_neg.mean()).sub_(divergence.c_prime(t_neg))
    if l2:
        grad_pos.add_(e_pos, alpha=2.0 * l2)
        grad_neg.add_(e_neg, alpha=2.0 * l2)
    return torch.cat([grad_pos.div_(t_pos.numel()), grad_neg.div_(t_neg.numel())])
