"""Fréchet distance and Inception Score from features and logits (no network here).

The Fréchet distance needs tr sqrt(S1 S2). pytorch-fid takes ``scipy.linalg.sqrtm(S1 @ S2, disp=False)``,
which breaks at scipy 1.18 and takes ~25 s for 2048 x 2048 on a 2-core CPU. Here a Cholesky factor and one
symmetric eigenvalue solve give the same trace (a few seconds); sets smaller than the feature dimension
(smoke runs, tests) use an exact n x n form.
"""

from __future__ import annotations

import numpy as np
import torch


def _check_statistics(mu1, sigma1, mu2, sigma2) -> tuple[np.ndarray, ...]:
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1 = np.atleast_2d(np.asarray(sigma1, np.float64))
    sigma2 = np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != (mu1.size, mu1.size):
        raise ValueError(
            f"mismatched statistics: mu {mu1.shape} vs {mu2.shape}, sigma {sigma1.shape} vs {sigma2.shape}"
        )
    return mu1, sigma1, mu2, sigma2


def _square_root_factor(matrix: np.ndarray) -> np.ndarray:
    """F with F F^T = matrix: Cholesky when positive definite (fast), else the symmetric square root."""
    try:
        return np.linalg.cholesky(matrix)
    except np.linalg.LinAlgError:
        # Singular (fewer images than dimensions): eigendecomposition, rounding negatives to zero.
        eigenvalues, eigenvectors = np.linalg.eigh(matrix)
        return eigenvectors * np.sqrt(np.clip(eigenvalues, 0, None))


def _trace_sqrt_of_psd(matrix: np.ndarray) -> float:
    eigenvalues = np.linalg.eigvalsh((matrix + matrix.T) / 2)
    return float(np.sqrt(np.clip(eigenvalues, 0, None)).sum())


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """||mu1 - mu2||^2 + tr(S1) + tr(S2) - 2 tr sqrt(S1 S2) for Gaussians N(mu1, S1), N(mu2, S2).

    With S2 = F F^T, S1 S2 has the eigenvalues of the symmetric PSD matrix F^T S1 F, so
    tr sqrt(S1 S2) = sum sqrt(eigvalsh(F^T S1 F)): no non-symmetric matrix square root.
    """
    mu1, sigma1, mu2, sigma2 = _check_statistics(mu1, sigma1, mu2, sigma2)
    factor = _square_root_factor((sigma2 + sigma2.T) / 2)
    trace_sqrt_product = _trace_sqrt_of_psd(factor.T @ sigma1 @ factor)
    difference = mu1 - mu2
    return float(difference @ difference + np.trace(sigma1) + np.trace(sigma2) - 2 * trace_sqrt_product)


def frechet_distance_to_features(features: np.ndarray, mu_ref: np.ndarray, sigma_ref: np.ndarray) -> float:
    """The Fréchet distance of a small set of features (n <= dim) to reference statistics.

    The set's covariance is X^T X / (n - 1) (X centred); the non-zero eigenvalues of sigma_ref X^T X are
    those of the n x n matrix X sigma_ref X^T, so no dim x dim decomposition is needed (fast for smoke
    runs and tests; the result is the same up to rounding).
    """
    features = np.asarray(features, np.float64)
    count = features.shape[0]
    if count < 2:
        raise ValueError(f"a covariance needs at least 2 images, got {count}")
    mu = features.mean(axis=0)
    mu_ref, sigma_ref = np.asarray(mu_ref, np.float64), np.asarray(sigma_ref, np.float64)
    if mu_ref.shape != mu.shape or sigma_ref.shape != (mu.size, mu.size):
        raise ValueError(
            f"mismatched statistics: features {features.shape}, mu {mu_ref.shape}, sigma {sigma_ref.shape}"
        )
    centred = features - mu
    trace_sigma = float((centred**2).sum() / (count - 1))
    trace_sqrt_product = _trace_sqrt_of_psd(centred @ sigma_ref @ centred.T / (count - 1))
    difference = mu - mu_ref
    return float(difference @ difference + trace_sigma + np.trace(sigma_ref) - 2 * trace_sqrt_product)


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def inception_score(
    logits: np.ndarray, splits: int = 10, shuffle_seed: int | None = None
) -> tuple[float, float, list[float]]:
    """(mean, std, per-split scores) of exp(E_x KL(p(y|x) || p(y))) over consecutive splits.

    The original (improved-GAN, used by f-EBM) splits in order without shuffling: ``shuffle_seed=None``.
    torch-fidelity permutes first with ``np.random.RandomState(2020)``. Softmax over all classes (1008 for
    the FID Inception: none dropped), float64, log-space; std is ``np.std`` (ddof=0) as in the original.
    """
    logits = np.asarray(logits, dtype=np.float64)
    if logits.ndim != 2:
        raise ValueError(f"logits must be (N, classes), got shape {logits.shape}")
    count = logits.shape[0]
    if splits < 1 or count < splits:
        raise ValueError(f"the Inception Score needs at least as many images ({count}) as splits ({splits})")
    if shuffle_seed is not None:
        logits = logits[np.random.RandomState(shuffle_seed).permutation(count)]
    log_probabilities = _log_softmax(logits)
    probabilities = np.exp(log_probabilities)
    scores = []
    for k in range(splits):
        part = slice(k * count // splits, (k + 1) * count // splits)
        split_log_p = log_probabilities[part]
        log_marginal = np.log(probabilities[part].mean(axis=0, keepdims=True))
        mean_kl = (probabilities[part] * (split_log_p - log_marginal)).sum(axis=1).mean()
        scores.append(float(np.exp(mean_kl)))
    return float(np.mean(scores)), float(np.std(scores)), scores


class RunningMoments:
    """Streaming mean and unbiased covariance (as ``np.cov(rowvar=False)``) in float64, on the features' device.

    Accumulates around the first batch's mean so that sum-of-squares cancellation stays at float64
    rounding; avoids keeping all 50k x 2048 features in memory.
    """

    def __init__(self) -> None:
        self.count = 0
        self._shift: torch.Tensor | None = None
        self._sum: torch.Tensor | None = None
        self._outer: torch.Tensor | None = None

    def update(self, features: torch.Tensor) -> None:
        features = features.detach().double()
        if self._shift is None:
            self._shift = features.mean(dim=0)
            self._sum = torch.zeros_like(self._shift)
            self._outer = features.new_zeros((features.shape[1], features.shape[1]))
        centred = features - self._shift
        self._sum += centred.sum(dim=0)
        self._outer += centred.T @ centred
        self.count += features.shape[0]

    def mean_and_covariance(self) -> tuple[np.ndarray, np.ndarray]:
        if self.count < 2 or self._shift is None:
            raise ValueError(f"a covariance needs at least 2 images, got {self.count}")
        centred_mean = self._sum / self.count
        covariance = (self._outer - self.count * torch.outer(centred_mean, centred_mean)) / (self.count - 1)
        return (self._shift + centred_mean).cpu().numpy(), covariance.cpu().numpy()
