"""The fast engine's hand-written gradients equal autograd through febm.objectives (Eq. 18 has one definition)."""

from __future__ import annotations

import pytest
import torch

from febm.divergences import get_divergence
from febm.objectives import energy_loss, variational_loss
from febm.toy.fast_grad import (
    FlatAdam,
    energy_output_grad,
    output_derivatives,
    variational_output_grad,
)
from febm.toy.network import FlatMLP, module_from_flat
from febm.toy.train import energy, energy_parameter_gradient
from tests.test_divergences import PAPER_DIVERGENCES

# alpha_2.5 is not one of the paper's nine: the closed-form alpha gradients must hold for any alpha.
DIVERGENCES = [*PAPER_DIVERGENCES, "alpha_2.5"]


def _batch(seed: int = 0, n: int = 300):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(2 * n, generator=generator, dtype=torch.float64) * 1.5 + 0.5
    h = 0.7 * torch.randn(2 * n, generator=generator, dtype=torch.float64)
    return x, h


@pytest.mark.parametrize("name", DIVERGENCES)
@pytest.mark.parametrize(("l2", "exp_clamp"), [(0.0, None), (0.3, None), (0.0, 1.5)])
def test_output_gradients_match_autograd_through_the_losses(name, l2, exp_clamp):
    div = get_divergence(name, exp_clamp=exp_clamp)
    x, h = _batch()
    n = x.numel() // 2
    mu, sigma = torch.tensor(0.4, dtype=torch.float64), torch.tensor(1.3, dtype=torch.float64)
    e = energy(x, mu, sigma)
    t = h + e
    derivatives = output_derivatives(div)

    h_leaf = h.clone().requires_grad_(True)
    total = variational_loss(div, h_leaf[:n], e[:n], h_leaf[n:], e[n:], l2).total
    (expected,) = torch.autograd.grad(total, h_leaf)
    got = variational_output_grad(derivatives, t[:n], t[n:], h[:n], h[n:], l2)
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-13)

    theta = torch.stack([mu, sigma]).requires_grad_(True)
    e_graph = energy(x, theta[0], theta[1])
    total = energy_loss(div, e_graph[:n], h[:n], e_graph[n:], h[n:], l2).total
    (expected_theta,) = torch.autograd.grad(total, theta)
    grad_e = energy_output_grad(div, derivatives, t[:n], t[n:], e[:n], e[n:], l2)
    got_theta = energy_parameter_gradient(x, mu, sigma, grad_e)
    torch.testing.assert_close(got_theta, expected_theta, rtol=1e-10, atol=1e-13)


def test_clamped_exponents_have_zero_gradient_beyond_the_clamp():
    div = get_divergence("pearson_x2", exp_clamp=1.0)
    g_prime, c_prime = output_derivatives(div)
    t = torch.tensor([-3.0, 0.2, 2.0], dtype=torch.float64)
    assert g_prime(t)[2] == 0 and c_prime(t)[2] == 0
    assert g_prime(t)[1] == pytest.approx(2 * torch.exp(torch.tensor(0.2)).item())


def test_hand_written_mlp_backward_matches_autograd():
    generator = torch.Generator().manual_seed(3)
    flat = FlatMLP.initial(16, generator, dtype=torch.float64)
    x = torch.randn(50, generator=generator, dtype=torch.float64)
    grad_h = torch.randn(50, generator=generator, dtype=torch.float64)
    module = module_from_flat(flat, 16)
    out = module(x[:, None]).squeeze(1)
    (out * grad_h).sum().backward()
    expected = torch.cat([p.grad.reshape(-1) for p in module.parameters()])

    net = FlatMLP(flat.clone(), 16)
    h, cache = net.forward(x.clone())
    torch.testing.assert_close(h, out.detach(), rtol=1e-12, atol=1e-12)
    got = net.backward(x, cache, grad_h, torch.empty_like(flat))
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-12)


def test_flat_adam_matches_torch_adam():
    generator = torch.Generator().manual_seed(1)
    start = torch.randn(20, generator=generator)
    mine, reference = start.clone(), start.clone().requires_grad_(True)
    ours = FlatAdam(mine, lr=0.01, betas=(0.9, 0.999))
    torch_adam = torch.optim.Adam([reference], lr=0.01, betas=(0.9, 0.999))
    for _ in range(5):
        grad = torch.randn(20, generator=generator)
        ours.step(grad)
        reference.grad = grad.clone()
        torch_adam.step()
    torch.testing.assert_close(mine, reference.detach(), rtol=1e-6, atol=1e-7)
