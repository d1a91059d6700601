"""Image preprocessing in front of the Inception network: the TF original's, or pytorch-fid's default.

The paper's numbers come from the TF graph ``inception-2015-12-05``, which takes uint8-valued images,
resizes them with TF1 ``resize_bilinear(align_corners=False)`` (source coordinate = i * in/out: no
half-pixel offset) and normalises with (x - 128) / 128. pytorch-fid instead divides by 255, resizes with
``F.interpolate(bilinear, align_corners=False)`` (half-pixel centres) and maps to 2x - 1; its features
differ from TF's by about 1e-2 relative, which moves FID slightly. ``tf`` is our default because it is
comparable to the paper; ``pytorch_fid`` reproduces pytorch-fid's numbers exactly.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

PREPROCESSING_MODES = ("tf", "pytorch_fid")
INCEPTION_INPUT_SIZE = 299


def _tf1_source_coordinates(
    in_size: int, out_size: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Lower/upper source indices and lerp weights as TF1's legacy scaler computes them, in float32."""
    scale = torch.tensor(in_size / out_size, dtype=torch.float32, device=device)
    source = torch.arange(out_size, dtype=torch.float32, device=device) * scale
    lower = source.floor()
    upper = torch.clamp(lower + 1, max=in_size - 1)
    return lower.long(), upper.long(), source - lower


def resize_bilinear_tf1(images: torch.Tensor, size: int) -> torch.Tensor:
    """TF1 ``resize_bilinear(align_corners=False, half_pixel_centers=False)`` of a (B, C, H, W) float tensor.

    Interpolates along the width first, then the height, with ``a + (b - a) * t`` as TF's kernel does,
    so the result is bit-identical to TF on CPU (up to fused multiply-adds on GPU). Vectorised over the
    batch: two gathers and two lerps, no per-image loop.
    """
    lower_y, upper_y, weight_y = _tf1_source_coordinates(images.shape[-2], size, images.device)
    lower_x, upper_x, weight_x = _tf1_source_coordinates(images.shape[-1], size, images.device)
    left = images.index_select(-1, lower_x)
    rows = left + (images.index_select(-1, upper_x) - left) * weight_x
    top = rows.index_select(-2, lower_y)
    return top + (rows.index_select(-2, upper_y) - top) * weight_y[:, None]


def preprocess(images_uint8: torch.Tensor, mode: str, size: int = INCEPTION_INPUT_SIZE) -> torch.Tensor:
    """uint8 (B, 3, H, W) -> the float32 (B, 3, size, size) input the FID Inception expects."""
    if images_uint8.dtype != torch.uint8:
        raise TypeError(f"expected uint8 images, got {images_uint8.dtype}")
    values = images_uint8.float()
    if mode == "tf":
        return (resize_bilinear_tf1(values, size) - 128.0) / 128.0
    if mode == "pytorch_fid":
        # Same operations in the same order as pytorch-fid (ToTensor's /255, then InceptionV3.forward).
        resized = F.interpolate(values / 255.0, size=(size, size), mode="bilinear", align_corners=False)
        return 2 * resized - 1
    raise ValueError(f"unknown preprocessing {mode!r}; choose one of {PREPROCESSING_MODES}")
