"""Theorem 2 and Eq. 18 against quadrature ground truth on Gaussian EBMs."""

from __future__ import annotations

import math

import pytest
import torch

from febm.divergences import get_divergence
from febm.objectives import (
    NonFiniteLossError,
    Objective,
    contrastive_divergence_loss,
    dual_critic_loss,
    dual_energy_loss,
    energy_loss,
    fenchel_bound,
    variational_loss,
)
from febm.quadrature import (
    GaussianMixture,
    f_divergence_exact,
    gaussian_log_pdf,
    simpson_grid,
    variational_bound_exact,
)
from tests.test_divergences import PAPER_DIVERGENCES

DATA = GaussianMixture([1.0], [0.3], [1.0])
MU0, SIGMA0 = 0.0, 0.95
GRID_X, GRID_W = simpson_grid(-25.0, 25.0, 20001)


def energy(x: torch.Tensor, mu, sigma) -> torch.Tensor:
    return (x - mu) ** 2 / (2 * sigma**2)


def optimal_h(x: torch.Tensor, mu: float, sigma: float) -> torch.Tensor:
    """H* = log(p Z) for the Gaussian EBM (Eq. 15)."""
    log_z = math.log(math.sqrt(2 * math.pi) * sigma)
    return DATA.log_pdf(x) + log_z


def fixed_h(x: torch.Tensor) -> torch.Tensor:
    """A fixed, non-optimal variational function: H* at theta0 plus a bounded perturbation."""
    return optimal_h(x, MU0, SIGMA0) + 0.2 * torch.sin(x) - 0.05


def exact_energy_gradient(name: str) -> torch.Tensor:
    """grad_theta of L(theta, omega) = E_p[g(H+E)] - E_q[c(H+E)] by quadrature, with q normalised."""
    div = get_divergence(name)
    theta = torch.tensor([MU0, SIGMA0], dtype=torch.float64, requires_grad=True)
    t = fixed_h(GRID_X) + energy(GRID_X, theta[0], theta[1])
    log_q = gaussian_log_pdf(GRID_X, theta[0], theta[1])
    value = variational_bound_exact(div, DATA.log_pdf(GRID_X), log_q, t, GRID_W)
    (grad,) = torch.autograd.grad(value, theta)
    return grad


def monte_carlo_gradients(loss_fn, batches: int = 32, n: int = 40000, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    grads = []
    for _ in range(batches):
        theta = torch.tensor([MU0, SIGMA0], dtype=torch.float64, requires_grad=True)
        x_pos = DATA.sample(n, generator, dtype=torch.float64)
        x_neg = MU0 + SIGMA0 * torch.randn(n, generator=generator, dtype=torch.float64)
        loss = loss_fn(theta, x_pos, x_neg)
        (grad,) = torch.autograd.grad(loss, theta)
        grads.append(grad)
    return torch.stack(grads)


def febm_energy_loss(name: str):
    div = get_divergence(name)

    def loss(theta, x_pos, x_neg):
        return energy_loss(
            div,
            e_pos=energy(x_pos, theta[0], theta[1]),
            h_pos=fixed_h(x_pos),
            e_neg=energy(x_neg, theta[0], theta[1]),
            h_neg=fixed_h(x_neg),
        ).total

    return loss


@pytest.mark.parametrize("name", PAPER_DIVERGENCES)
def test_bound_is_tight_at_optimal_h_and_smaller_elsewhere(name):
    """Theorem 2: sup_H E_p[g(H+E)] - E_q[c(H+E)] = D_f(p||q), attained at H* = log(p Z)."""
    div = get_divergence(name)
    log_p = DATA.log_pdf(GRID_X)
    log_q = gaussian_log_pdf(GRID_X, MU0, SIGMA0)
    e = energy(GRID_X, MU0, SIGMA0)
    # D_f straight from the definition E_q[f(p/q)], independent of g and c.
    direct = (torch.exp(log_q) * div.f(torch.exp(log_p - log_q)) * GRID_W).sum()
    at_optimum = variational_bound_exact(div, log_p, log_q, optimal_h(GRID_X, MU0, SIGMA0) + e, GRID_W)
    assert float(at_optimum) == pytest.approx(float(direct), rel=1e-8, abs=1e-10)
    assert float(f_divergence_exact(div, log_p, log_q, GRID_W)) == pytest.approx(float(direct), rel=1e-8)
    for shape in (torch.ones_like(GRID_X), torch.tanh(GRID_X), torch.sin(GRID_X), torch.exp(-(GRID_X**2))):
        for eps in (-0.3, -0.05, 0.05, 0.3):
            h = optimal_h(GRID_X, MU0, SIGMA0) + eps * shape
            perturbed = variational_bound_exact(div, log_p, log_q, h + e, GRID_W)
            assert float(perturbed) < float(direct) - 1e-7


@pytest.mark.parametrize("name", PAPER_DIVERGENCES)
def test_energy_loss_gradient_is_unbiased_for_eq18(name):
    exact = exact_energy_gradient(name)
    grads = monte_carlo_gradients(febm_energy_loss(name))
    mean, stderr = grads.mean(0), grads.std(0) / math.sqrt(len(grads))
    assert torch.all(stderr < 0.05 * exact.abs() + 2e-3), f"estimator too noisy to test: {stderr}"
    z = (mean - exact).abs() / stderr
    assert torch.all(z < 4.5), f"MC {mean.tolist()} vs quadrature {exact.tolist()} (z={z.tolist()})"


def test_dropping_the_covariance_term_is_detectably_biased():
    """Negative control: the naive surrogate (no score-function term) must fail the same check."""
    div = get_divergence("jensen_shannon")

    def naive(theta, x_pos, x_neg):
        return fenchel_bound(
            div, fixed_h(x_pos) + energy(x_pos, *theta), fixed_h(x_neg) + energy(x_neg, *theta)
        )

    exact = exact_energy_gradient("jensen_shannon")
    grads = monte_carlo_gradients(naive)
    z = (grads.mean(0) - exact).abs() / (grads.std(0) / math.sqrt(len(grads)))
    assert torch.any(z > 10)


def test_kl_febm_and_contrastive_divergence_have_the_same_expected_gradient():
    """With H = H*, E_q[e^t] = 1 and the KL f-EBM gradient reduces to Eq. 8."""
    div = get_divergence("kl")
    theta = torch.tensor([MU0, SIGMA0], dtype=torch.float64, requires_grad=True)
    h_star = optimal_h(GRID_X, MU0, SIGMA0)
    log_p, log_q = DATA.log_pdf(GRID_X), gaussian_log_pdf(GRID_X, theta[0], theta[1])
    febm_value = variational_bound_exact(div, log_p, log_q, h_star + energy(GRID_X, *theta), GRID_W)
    (febm_grad,) = torch.autograd.grad(febm_value, theta)
    p, q = torch.exp(log_p).detach(), torch.exp(log_q).detach()
    cd_value = ((p - q) * energy(GRID_X, *theta) * GRID_W).sum()
    (cd_grad,) = torch.autograd.grad(cd_value, theta)
    torch.testing.assert_close(febm_grad, cd_grad, rtol=1e-7, atol=1e-9)

    def cd(theta, x_pos, x_neg):
        return contrastive_divergence_loss(energy(x_pos, *theta), energy(x_neg, *theta)).total

    cd_mc = monte_carlo_gradients(cd)
    z = (cd_mc.mean(0) - cd_grad).abs() / (cd_mc.std(0) / math.sqrt(len(cd_mc)))
    assert torch.all(z < 4.5)


def test_dual_energy_loss_matches_theorem_1():
    """-grad E_q[f*(T)] by quadrature equals the covariance surrogate's expected gradient."""
    div = get_divergence("squared_hellinger")

    def critic(x):
        return 0.3 * torch.sin(x) + 0.1 * x

    theta = torch.tensor([MU0, SIGMA0], dtype=torch.float64, requires_grad=True)
    log_q = gaussian_log_pdf(GRID_X, theta[0], theta[1])
    value = -(torch.exp(log_q) * div.c(critic(GRID_X)) * GRID_W).sum()
    (exact,) = torch.autograd.grad(value, theta)

    def surrogate(theta, x_pos, x_neg):
        return dual_energy_loss(div, energy(x_neg, *theta), critic(x_neg)).total

    grads = monte_carlo_gradients(surrogate)
    z = (grads.mean(0) - exact).abs() / (grads.std(0) / math.sqrt(len(grads)))
    assert torch.all(z < 4.5)


def test_losses_route_gradients_to_the_right_network():
    div = get_divergence("reverse_kl")
    e_pos, e_neg, h_pos, h_neg = (torch.randn(8, requires_grad=True) for _ in range(4))
    h_loss = variational_loss(div, h_pos, e_pos, h_neg, e_neg, l2=1.0).total
    grads = torch.autograd.grad(h_loss, [e_pos, e_neg, h_pos, h_neg], allow_unused=True)
    assert grads[0] is None and grads[1] is None and grads[2] is not None and grads[3] is not None
    e_loss = energy_loss(div, e_pos, h_pos, e_neg, h_neg, l2=1.0).total
    grads = torch.autograd.grad(e_loss, [e_pos, e_neg, h_pos, h_neg], allow_unused=True)
    assert grads[2] is None and grads[3] is None and grads[0] is not None and grads[1] is not None


def test_dual_losses_penalise_outputs_and_route_gradients():
    """The dual form's L2 terms: the critic's on both sides, the energy's on model samples only."""
    div = get_divergence("kl")
    e_neg, v_pos, v_neg = torch.ones(4, requires_grad=True), 2 * torch.ones(4), 3 * torch.ones(4)
    plain = dual_energy_loss(div, e_neg, v_neg).total
    assert float((dual_energy_loss(div, e_neg, v_neg, l2=0.5).total - plain).detach()) == pytest.approx(0.5)
    (grad,) = torch.autograd.grad(dual_energy_loss(div, e_neg, v_neg.requires_grad_(), l2=0.5).total, e_neg)
    assert torch.allclose(grad, torch.full((4,), 0.5 * 2 / 4))  # constant reward: covariance gradient 0
    critic = dual_critic_loss(div, v_pos, v_neg.detach(), l2=0.25).total
    assert float(critic - dual_critic_loss(div, v_pos, v_neg.detach()).total) == pytest.approx(0.25 * (4 + 9))


def test_l2_penalty_coefficient_is_applied():
    div = get_divergence("kl")
    e_pos, e_neg, h_pos, h_neg = torch.ones(4), 2 * torch.ones(4), torch.zeros(4), torch.zeros(4)
    base = energy_loss(div, e_pos, h_pos, e_neg, h_neg, l2=0.0).total
    with_l2 = energy_loss(div, e_pos, h_pos, e_neg, h_neg, l2=0.5).total
    assert float(with_l2 - base) == pytest.approx(0.5 * (1 + 4))


def test_non_finite_term_is_named_with_the_step():
    objective = Objective(torch.tensor(1.0), {"data_term": torch.tensor(float("nan"))})
    with pytest.raises(NonFiniteLossError, match=r"'data_term'.*step 17"):
        objective.check_finite(step=17)
