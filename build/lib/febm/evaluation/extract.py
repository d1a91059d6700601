"""Batched Inception pass over uint8 images: FID statistics and IS logits in one sweep (no per-image loop)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from febm.evaluation.inception import FidInception
from febm.evaluation.metrics import RunningMoments


@dataclass
class InceptionOutputs:
    count: int
    mu: np.ndarray  # (2048,) float64
    sigma: np.ndarray  # (2048, 2048) float64, unbiased
    logits: np.ndarray  # (N, 1008) float64, without the fc bias
    pool3: np.ndarray | None = None  # (N, 2048) float32, only when asked for


@contextlib.contextmanager
def full_float32_precision() -> Iterator[None]:
    """Turn off TF32 on CUDA while extracting: its 10-bit mantissa moves features by ~1e-3."""
    saved = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def as_nchw_uint8(images: np.ndarray) -> np.ndarray:
    """Accept (N, H, W, 3) or (N, 3, H, W) uint8; anything else is a clear error."""
    if images.dtype != np.uint8:
        raise ValueError(
            f"images must be uint8, got {images.dtype}; quantise samples in [0, 1] with "
            "np.clip(np.floor(256 * x), 0, 255).astype(np.uint8) as the original did"
        )
    if images.ndim == 4 and images.shape[-1] == 3:
        return images.transpose(0, 3, 1, 2)
    if images.ndim == 4 and images.shape[1] == 3:
        return images
    raise ValueError(f"images must have shape (N, H, W, 3) or (N, 3, H, W), got {images.shape}")


def run_inception(
    images: np.ndarray,
    model: FidInception,
    batch_size: int = 200,
    keep_pool3: bool = False,
    progress: bool = True,
    description: str = "inception",
) -> InceptionOutputs:
    """One pass of ``model`` over ``images`` (uint8) in batches on the model's device."""
    images = as_nchw_uint8(images)
    device = next(model.parameters()).device
    moments = RunningMoments()
    logits, pool3_batches = [], []
    with torch.inference_mode(), full_float32_precision():
        starts = range(0, len(images), batch_size)
        for start in tqdm(starts, desc=description, unit="batch", disable=not progress, leave=False):
            batch = torch.from_numpy(np.ascontiguousarray(images[start : start + batch_size])).to(device)
            pool3, batch_logits = model(batch)
            moments.update(pool3)
            logits.append(batch_logits.cpu().numpy())
            if keep_pool3:
                pool3_batches.append(pool3.cpu().numpy())
    mu, sigma = moments.mean_and_covariance()
    return InceptionOutputs(
        count=len(images),
        mu=mu,
        sigma=sigma,
        logits=np.concatenate(logits),
        pool3=np.concatenate(pool3_batches) if keep_pool3 else None,
    )
