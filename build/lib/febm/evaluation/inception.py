"""pytorch-fid's FID Inception (TF ``inception-2015-12-05`` ported), returning pool3 features and IS logits.

We build the network ourselves from pytorch-fid's public blocks instead of calling
``pytorch_fid.inception.InceptionV3``: that class downloads the weights in its constructor and drops
the 1008-way ``fc`` layer the Inception Score needs. The forward pass runs exactly pytorch-fid's four
blocks (stem, Mixed_5b..6e, Mixed_7a..7c, global average pool).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from febm.evaluation.preprocessing import INCEPTION_INPUT_SIZE, PREPROCESSING_MODES, preprocess

POOL3_DIM = 2048
LOGITS_DIM = 1008


def build_fid_inception_architecture() -> nn.Module:
    """The body of ``pytorch_fid.inception.fid_inception_v3`` without its download (random init)."""
    from pytorch_fid.inception import (
        FIDInceptionA,
        FIDInceptionC,
        FIDInceptionE_1,
        FIDInceptionE_2,
        _inception_v3,
    )

    network = _inception_v3(num_classes=LOGITS_DIM, aux_logits=False, weights=None)
    network.Mixed_5b = FIDInceptionA(192, pool_features=32)
    network.Mixed_5c = FIDInceptionA(256, pool_features=64)
    network.Mixed_5d = FIDInceptionA(288, pool_features=64)
    network.Mixed_6b = FIDInceptionC(768, channels_7x7=128)
    network.Mixed_6c = FIDInceptionC(768, channels_7x7=160)
    network.Mixed_6d = FIDInceptionC(768, channels_7x7=160)
    network.Mixed_6e = FIDInceptionC(768, channels_7x7=192)
    network.Mixed_7b = FIDInceptionE_1(1280)
    network.Mixed_7c = FIDInceptionE_2(2048)
    return network


class FidInception(nn.Module):
    """uint8 images -> (pool3 features float32 (B, 2048), unbiased logits float64 (B, 1008)).

    Logits are ``pool3 @ fc.weight.T`` without the bias, as in the original IS code (improved-GAN) and
    torch-fidelity; the bias changes CIFAR-10's IS by ~0.3, so it must stay out.
    """

    def __init__(
        self,
        state_dict: Mapping[str, Any],
        preprocessing: str = "tf",
        input_size: int = INCEPTION_INPUT_SIZE,
    ) -> None:
        super().__init__()
        if preprocessing not in PREPROCESSING_MODES:
            raise ValueError(f"unknown preprocessing {preprocessing!r}; choose one of {PREPROCESSING_MODES}")
        # Built on the meta device (no random init to throw away), then the loaded tensors are assigned.
        with torch.device("meta"):
            network = build_fid_inception_architecture()
        network.load_state_dict(state_dict, strict=True, assign=True)
        self.preprocessing = preprocessing
        # 299 for every reported number; tests may use a smaller size (>= 75) to exercise the same path fast.
        self.input_size = input_size
        self.features = nn.Sequential(
            network.Conv2d_1a_3x3,
            network.Conv2d_2a_3x3,
            network.Conv2d_2b_3x3,
            nn.MaxPool2d(kernel_size=3, stride=2),
            network.Conv2d_3b_1x1,
            network.Conv2d_4a_3x3,
            nn.MaxPool2d(kernel_size=3, stride=2),
            network.Mixed_5b,
            network.Mixed_5c,
            network.Mixed_5d,
            network.Mixed_6a,
            network.Mixed_6b,
            network.Mixed_6c,
            network.Mixed_6d,
            network.Mixed_6e,
            network.Mixed_7a,
            network.Mixed_7b,
            network.Mixed_7c,
            nn.AdaptiveAvgPool2d(output_size=(1, 1)),
        )
        self.register_buffer("fc_weight", network.fc.weight.detach().clone())
        self.eval()
        self.requires_grad_(False)

    def forward(self, images_uint8: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        inputs = preprocess(images_uint8, self.preprocessing, self.input_size)
        if self._uses_channels_last():
            inputs = inputs.contiguous(memory_format=torch.channels_last)
        pool3 = self.features(inputs).flatten(1)
        logits = pool3.double() @ self.fc_weight.double().T
        return pool3, logits

    def _uses_channels_last(self) -> bool:
        first_conv = self.features[0].conv.weight
        return first_conv.is_contiguous(memory_format=torch.channels_last) and first_conv.shape[-1] > 1


def load_fid_inception(
    weights: str | Path,
    device: str | torch.device = "cpu",
    preprocessing: str = "tf",
    input_size: int = INCEPTION_INPUT_SIZE,
    channels_last: bool = True,
) -> FidInception:
    """Load checked weights (``weights_only=True``) into the network on ``device``.

    channels_last lets oneDNN (CPU) and cuDNN pick faster convolution kernels; features agree with the
    default layout to float32 rounding.
    """
    from febm.evaluation.weights import load_state_dict

    model = FidInception(load_state_dict(weights), preprocessing=preprocessing, input_size=input_size)
    model = model.to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model
