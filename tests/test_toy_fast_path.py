"""The fast engine's hand-written gradients equal autograd through febm.objectives (Eq. 18 has one definition)."""

from __future__ import annotations

import math

import pytest
import torch

from febm.divergences import Divergence, get_divergence
from febm.objectives import energy_loss, variational_loss
from febm.quadrature import gaussian_energy as energy
from febm.toy.fast_grad import energy_output_grad, variational_output_grad
from febm.toy.network import FlatMLP, module_from_flat
from febm.toy.tails import RatioCapped
from febm.toy.updates import energy_parameter_gradient
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

    h_leaf = h.clone().requires_grad_(True)
    total = variational_loss(div, h_leaf[:n], e[:n], h_leaf[n:], e[n:], l2).total
    (expected,) = torch.autograd.grad(total, h_leaf)
    got = variational_output_grad(div, t[:n], t[n:], h[:n], h[n:], l2)
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-13)

    theta = torch.stack([mu, sigma]).requires_grad_(True)
    e_graph = energy(x, theta[0], theta[1])
    total = energy_loss(div, e_graph[:n], h[:n], e_graph[n:], h[n:], l2).total
    (expected_theta,) = torch.autograd.grad(total, theta)
    grad_e = energy_output_grad(div, t[:n], t[n:], e[:n], e[n:], l2)
    got_theta = energy_parameter_gradient(x, mu, sigma, grad_e)
    torch.testing.assert_close(got_theta, expected_theta, rtol=1e-10, atol=1e-13)


def _autograd_derivative(function, t):
    leaf = t.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(function(leaf).sum(), leaf)
    return grad


# t on both sides of every clamp used below (exp_clamp 1.5 at scales 0.5 to 3.5, the cap 0.8), off the kinks
# themselves (there the closed forms take the derivative from inside, torch's autograd 0: both subgradients).
T = torch.linspace(-4.0, 4.0, 160, dtype=torch.float64) + 1e-3


@pytest.mark.parametrize("name", DIVERGENCES)
@pytest.mark.parametrize("exp_clamp", [None, 1.5])
def test_each_divergence_derivative_equals_autograd_of_its_own_g_and_c(name, exp_clamp):
    div = get_divergence(name, exp_clamp=exp_clamp)
    for divergence in (div, RatioCapped(div, cap=0.8)):
        torch.testing.assert_close(
            divergence.g_prime(T), _autograd_derivative(divergence.g, T), rtol=1e-12, atol=0
        )
        torch.testing.assert_close(
            divergence.c_prime(T), _autograd_derivative(divergence.c, T), rtol=1e-12, atol=0
        )
    # A derivative taken from the class's g would agree with a wrong g: without the clamp, check them against
    # the generator itself, g = f'(e^t) and c = f*(f'(e^t)) through the Fenchel conjugate.
    if exp_clamp is None:
        t = torch.linspace(-3.0, 3.0, 61, dtype=torch.float64)
        from_f = _autograd_derivative(lambda s: div.f_prime(torch.exp(s)), t)
        from_conjugate = _autograd_derivative(lambda s: div.conjugate(div.f_prime(torch.exp(s))), t)
        torch.testing.assert_close(div.g_prime(t), from_f, rtol=1e-9, atol=1e-12)
        torch.testing.assert_close(div.c_prime(t), from_conjugate, rtol=1e-9, atol=1e-12)


def test_every_registered_divergence_has_its_own_closed_form():
    """Only the clamped JS falls back to autograd (the original's clamp quirk); the others override both."""
    for name in DIVERGENCES:
        cls = type(get_divergence(name))
        assert cls.g_prime is not Divergence.g_prime and cls.c_prime is not Divergence.c_prime, name


def test_clamped_exponents_have_zero_gradient_beyond_the_clamp():
    div = get_divergence("pearson_x2", exp_clamp=1.0)
    t = torch.tensor([-3.0, 0.2, 2.0], dtype=torch.float64)
    assert div.g_prime(t)[2] == 0 and div.c_prime(t)[2] == 0
    assert div.g_prime(t)[1] == pytest.approx(2 * torch.exp(torch.tensor(0.2)).item())
    capped = RatioCapped(get_divergence("kl"), cap=0.5)
    assert capped.c_prime(t).tolist() == [math.exp(-3.0), math.exp(0.2), 0.0]


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
