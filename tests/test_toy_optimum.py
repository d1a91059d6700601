"""Exact optima of the 1-D study against closed forms, and its bad-input errors."""

from __future__ import annotations

import math

import pytest
import torch

from febm.divergences import UnknownDivergenceError, get_divergence
from febm.quadrature import GaussianMixture, InvalidMixtureError
from febm.toy.optimum import (
    NoOptimumError,
    find_optimum,
    gaussian_divergence,
    minimise_over_gaussians,
)
from tests.test_divergences import PAPER_DIVERGENCES


@pytest.mark.parametrize(
    "mixture",
    [GaussianMixture.paper(), GaussianMixture([0.2, 0.5, 0.3], [-2.0, 0.5, 3.0], [0.5, 1.0, 0.7])],
    ids=["paper", "three-components"],
)
def test_kl_optimum_is_moment_matching(mixture):
    optimum = find_optimum("kl", mixture)
    assert optimum.mu == pytest.approx(mixture.mean, abs=1e-6)
    assert optimum.sigma == pytest.approx(mixture.std, abs=1e-6)
    assert optimum.grid_change < 1e-6


@pytest.mark.parametrize("name", PAPER_DIVERGENCES)
def test_single_gaussian_is_its_own_optimum_for_every_divergence(name):
    data = GaussianMixture([1.0], [0.7], [1.3])
    optimum = find_optimum(name, data)
    assert optimum.mu == pytest.approx(0.7, abs=1e-6)
    assert optimum.sigma == pytest.approx(1.3, abs=1e-6)
    assert abs(optimum.value) < 1e-9


def test_alpha_minus_one_and_neyman_have_the_same_optimum():
    # f_Neyman = 2 f_alpha=-1, so the minimiser is the same and the value doubles.
    mixture = GaussianMixture.paper()
    alpha, neyman = find_optimum("alpha_-1", mixture), find_optimum("neyman_x2", mixture)
    assert alpha.mu == pytest.approx(neyman.mu, abs=1e-7)
    assert alpha.sigma == pytest.approx(neyman.sigma, abs=1e-7)
    assert neyman.value == pytest.approx(2 * alpha.value, rel=1e-9)


def test_optimum_is_a_minimum_of_the_quadrature_divergence():
    mixture = GaussianMixture.paper()
    optimum = find_optimum("jensen_shannon", mixture)
    div = get_divergence("jensen_shannon")
    for dmu, dsigma in [(1e-3, 0), (-1e-3, 0), (0, 1e-3), (0, -1e-3)]:
        nearby = float(gaussian_divergence(div, mixture, optimum.mu + dmu, optimum.sigma + dsigma))
        assert nearby > optimum.value


def test_mode_seeking_divergence_finds_the_global_not_the_local_minimum():
    # Reverse KL has a local minimum at the narrow component (mu ~ -0.96, sigma ~ 0.31, D ~ 0.99).
    optimum = find_optimum("reverse_kl", GaussianMixture.paper())
    assert optimum.value < 0.3 and optimum.mu > 1.0


def test_pearson_is_infinite_below_half_the_widest_variance():
    mixture = GaussianMixture.paper()  # widest data variance 2: D infinite for sigma^2 <= 1
    div = get_divergence("pearson_x2")
    assert math.isinf(float(gaussian_divergence(div, mixture, 1.0, 0.9)))
    assert math.isfinite(float(gaussian_divergence(div, mixture, 1.0, 1.2)))


def test_divergence_that_overflows_for_every_gaussian_has_no_optimum():
    with pytest.raises(NoOptimumError, match=r"infinite .* for every Gaussian"):
        find_optimum("alpha_2000", GaussianMixture.paper())


def test_optimiser_running_to_sigma_zero_is_reported():
    # An objective that keeps decreasing as sigma -> 0: the search must stop and say so.
    def shrinking(params: torch.Tensor) -> torch.Tensor:
        return params[1] + (params[0] - 1.0) ** 2

    with pytest.raises(NoOptimumError, match="sigma -> 0"):
        minimise_over_gaussians(shrinking, (0.0, 0.0), "synthetic", (1e-3, 1e3), 1e3)


def test_unknown_divergence_is_rejected():
    with pytest.raises(UnknownDivergenceError, match="unknown divergence 'kullback'"):
        find_optimum("kullback", GaussianMixture.paper())


@pytest.mark.parametrize(
    ("weights", "means", "stds", "message"),
    [
        ([0.5, 0.5], [0.0, 1.0], [1.0, 0.0], "stds must be positive"),
        ([1.2, -0.2], [0.0, 1.0], [1.0, 1.0], "weights must be positive"),
        ([0.5, 0.4], [0.0, 1.0], [1.0, 1.0], "sum to 1"),
    ],
)
def test_invalid_mixtures_are_rejected(weights, means, stds, message):
    with pytest.raises(InvalidMixtureError, match=message):
        GaussianMixture(weights, means, stds)


def test_equilibrium_refinement_never_ends_further_from_equilibrium_than_it_started():
    from febm.toy.stability import _refine

    class LinearField:
        """v(phi) = -phi: equilibrium at 0; Adam's fixed-size steps overshoot a start that is already close."""

        def field(self, phi: torch.Tensor) -> torch.Tensor:
            return -phi

    start = torch.full((3,), 1e-6, dtype=torch.float64)
    refined = _refine(LinearField(), start, steps=50, lr=1e-3)
    assert float(refined.norm()) <= float(start.norm())
    far = torch.full((3,), 0.5, dtype=torch.float64)
    assert float(_refine(LinearField(), far, steps=200, lr=1e-2).norm()) < 0.5 * float(far.norm())


@pytest.mark.parametrize("name", ["kl", "squared_hellinger", "alpha_0.9", "reverse_kl"])
def test_divergence_map_is_finite_where_the_divergence_is_even_on_a_grid_far_beyond_q(name):
    # Figure 4's map shares one wide grid between narrow and wide q: far from a narrow q, e^t overflows and
    # q c(t) was denormal * inf. These divergences are finite for every Gaussian.
    from febm.toy.figures import divergence_surface
    from febm.toy.optimum import gaussian_divergence

    mixture = GaussianMixture.paper()
    surface = divergence_surface(name, mixture, [-1.8, 3.8], [0.38, 3.3])
    assert bool(torch.isfinite(surface).all())
    own_grid = gaussian_divergence(get_divergence(name), mixture, -1.8, 0.38)
    assert float(surface[0, 0]) == pytest.approx(float(own_grid), rel=1e-6)
