"""Fréchet distance and Inception Score against closed forms and independent formulas (no network)."""

import warnings

import numpy as np
import pytest
import torch

from febm.evaluation.metrics import (
    RunningMoments,
    frechet_distance,
    frechet_distance_to_features,
    inception_score,
)


def random_covariance(rng: np.random.Generator, dim: int) -> np.ndarray:
    factor = rng.normal(size=(dim, dim))
    return factor @ factor.T / dim + 0.1 * np.eye(dim)


def test_frechet_distance_of_one_dimensional_gaussians_is_the_closed_form():
    # W2^2 between N(m1, s1^2) and N(m2, s2^2) is (m1 - m2)^2 + (s1 - s2)^2.
    assert frechet_distance([1.0], [[4.0]], [-2.0], [[0.25]]) == pytest.approx(9.0 + 1.5**2, rel=1e-12)


def test_frechet_distance_of_diagonal_gaussians_is_the_closed_form():
    rng = np.random.default_rng(0)
    mu1, mu2 = rng.normal(size=6), rng.normal(size=6)
    var1, var2 = rng.uniform(0.1, 3, size=6), rng.uniform(0.1, 3, size=6)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(var1) - np.sqrt(var2)) ** 2)
    assert frechet_distance(mu1, np.diag(var1), mu2, np.diag(var2)) == pytest.approx(expected, rel=1e-10)


def test_frechet_distance_with_an_isotropic_covariance_is_the_closed_form():
    # S1 = a I: tr sqrt(S1 S2) = sqrt(a) * sum sqrt(eig(S2)), for any (non-diagonal) S2.
    rng = np.random.default_rng(1)
    sigma2 = random_covariance(rng, 8)
    expected = 8 * 2.0 + np.trace(sigma2) - 2 * np.sqrt(2.0) * np.sqrt(np.linalg.eigvalsh(sigma2)).sum()
    assert frechet_distance(np.zeros(8), 2.0 * np.eye(8), np.zeros(8), sigma2) == pytest.approx(
        expected, rel=1e-10
    )


def test_frechet_distance_matches_pytorch_fid_on_general_covariances():
    from pytorch_fid.fid_score import calculate_frechet_distance

    rng = np.random.default_rng(2)
    mu1, mu2 = rng.normal(size=20), rng.normal(size=20)
    sigma1, sigma2 = random_covariance(rng, 20), random_covariance(rng, 20)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # scipy 1.17's sqrtm(disp=...) warning
        theirs = calculate_frechet_distance(mu1, sigma1, mu2, sigma2)
    assert frechet_distance(mu1, sigma1, mu2, sigma2) == pytest.approx(theirs, rel=1e-9)


def test_frechet_distance_is_zero_for_identical_rank_deficient_statistics():
    # Fewer samples than dimensions gives a singular covariance (n < 2048 in small runs).
    # The null space contributes sqrt(rounding) ~ 1e-8 * trace, far below any reported digit.
    features = np.random.default_rng(3).normal(size=(5, 12))
    mu, sigma = features.mean(0), np.cov(features, rowvar=False)
    assert abs(frechet_distance(mu, sigma, mu, sigma)) < 1e-6 * np.trace(sigma)


def test_frechet_distance_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="mismatched"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))


def one_hot_logits(classes: np.ndarray, total_classes: int = 1008) -> np.ndarray:
    logits = np.zeros((len(classes), total_classes))
    logits[np.arange(len(classes)), classes] = 60.0  # softmax mass off the class: ~1e-23
    return logits


@pytest.mark.parametrize("k", [1, 2, 7, 10])
def test_inception_score_of_balanced_one_hot_predictions_is_k(k):
    logits = one_hot_logits(np.arange(10 * k * 3) % k)
    mean, std, per_split = inception_score(logits, splits=10)
    assert mean == pytest.approx(k, rel=1e-9)
    assert std == pytest.approx(0.0, abs=1e-9)
    assert len(per_split) == 10


def test_inception_score_of_identical_rows_is_one():
    logits = np.tile(np.random.default_rng(4).normal(size=1008), (50, 1))
    mean, std, _ = inception_score(logits, splits=10)
    assert mean == pytest.approx(1.0, abs=1e-12)
    assert std == pytest.approx(0.0, abs=1e-12)


def improved_gan_reference(logits: np.ndarray, splits: int) -> tuple[float, float]:
    """The improved-GAN formula written directly: softmax, then per split exp(mean KL(p || p_bar))."""
    preds = np.exp(logits - logits.max(1, keepdims=True))
    preds /= preds.sum(1, keepdims=True)
    scores = []
    for i in range(splits):
        part = preds[(i * preds.shape[0] // splits) : ((i + 1) * preds.shape[0] // splits), :]
        kl = part * (np.log(part) - np.log(np.expand_dims(np.mean(part, 0), 0)))
        scores.append(np.exp(np.mean(np.sum(kl, 1))))
    return float(np.mean(scores)), float(np.std(scores))


def test_inception_score_matches_the_improved_gan_formula():
    logits = np.random.default_rng(5).normal(scale=3.0, size=(503, 1008))
    mean, std, _ = inception_score(logits, splits=10)
    expected_mean, expected_std = improved_gan_reference(logits, 10)
    assert mean == pytest.approx(expected_mean, rel=1e-10)
    assert std == pytest.approx(expected_std, rel=1e-8)


def test_inception_score_shuffle_uses_torch_fidelity_permutation():
    logits = np.random.default_rng(6).normal(scale=3.0, size=(200, 1008))
    permuted = logits[np.random.RandomState(2020).permutation(200)]
    assert inception_score(logits, 10, shuffle_seed=2020)[0] == pytest.approx(
        inception_score(permuted, 10)[0]
    )
    assert inception_score(logits, 10, shuffle_seed=2020)[0] != pytest.approx(inception_score(logits, 10)[0])


def test_inception_score_needs_at_least_one_image_per_split():
    with pytest.raises(ValueError, match="at least as many images"):
        inception_score(np.zeros((5, 1008)), splits=10)


def test_running_moments_equal_numpy_mean_and_covariance_despite_a_large_offset():
    rng = np.random.default_rng(7)
    features = rng.normal(size=(97, 6)) * 0.01 + 1000.0  # cancellation-prone: tiny spread, large mean
    moments = RunningMoments()
    for start, stop in [(0, 1), (1, 40), (40, 97)]:
        moments.update(torch.from_numpy(features[start:stop]))
    mu, sigma = moments.mean_and_covariance()
    np.testing.assert_allclose(mu, features.mean(0), rtol=1e-12)
    np.testing.assert_allclose(sigma, np.cov(features, rowvar=False), rtol=1e-8, atol=1e-12)


def test_frechet_distance_to_few_features_equals_the_covariance_form():
    rng = np.random.default_rng(8)
    features = rng.normal(size=(6, 15))  # fewer samples than dimensions, as in smoke runs
    mu_ref, sigma_ref = rng.normal(size=15), random_covariance(rng, 15)
    expected = frechet_distance(features.mean(0), np.cov(features, rowvar=False), mu_ref, sigma_ref)
    # The covariance form takes square roots of rounding noise in the sample covariance's null space (~1e-8).
    assert frechet_distance_to_features(features, mu_ref, sigma_ref) == pytest.approx(expected, abs=1e-6)
    own_mu, own_sigma = features.mean(0), np.cov(features, rowvar=False)
    assert abs(frechet_distance_to_features(features, own_mu, own_sigma)) < 1e-6 * np.trace(own_sigma)
