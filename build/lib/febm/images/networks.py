"""The original's ResNet32 energy network (docs/original-code.md §4), used for both E and H.

Layout (NCHW here; the TF original is NHWC), width w = ``num_filters`` (128 in the paper):

    stem      SN conv 3->w, LeakyReLU(0.2)
    res_optim w->w,   avg-pool 2        res_1 w->w
    res_2     w->2w,  avg-pool 2, SN-conv shortcut
    res_3     2w->2w                     res_4 2w->2w, avg-pool 2      res_5 2w->2w
    head      ReLU, sum over H x W, linear 2w->1 (the only bias in the network)

Each residual block, with a = LeakyReLU(0.2) and class y (conditional networks only):

    u = a(conv1(x + bias1[y]))
    v = conv2(u + bias2[y]) * (gain2[y] + shared_gain)
    out = a(avgpool?(v + shortcut(x)))

conv1 / stem / shortcut use exact spectral normalisation with N(0, 1) raw init; conv2 the bounded
variant with N(0, 1e-10) raw init so the residual branch starts near zero. Unconditional networks
(CelebA) skip the class bias/gain entirely, as the f-EBM code does.
At w = 128 the conditional network has 5,350,529 parameters and the unconditional 5,312,129.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from febm.images.spectral import SpectralConv2d

LEAKY_SLOPE = 0.2
CONV2_INIT_STD = 1e-10


@dataclass(frozen=True)
class NetworkConfig:
    """Everything needed to rebuild a network; stored next to its weights in model.pt."""

    num_filters: int = 128
    num_classes: int = 0  # 0 = unconditional
    image_channels: int = 3

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NetworkConfig:
        return cls(**{key: data[key] for key in ("num_filters", "num_classes", "image_channels")})


class ResidualBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, *, num_classes: int, downsample: bool) -> None:
        super().__init__()
        self.downsample = downsample
        self.conv1 = SpectralConv2d(in_channels, out_channels, bounded=False, init_std=1.0)
        self.conv2 = SpectralConv2d(out_channels, out_channels, bounded=True, init_std=CONV2_INIT_STD)
        self.shortcut = (
            SpectralConv2d(in_channels, out_channels, bounded=False, init_std=1.0)
            if in_channels != out_channels
            else None
        )
        self.conditional = num_classes > 0
        if self.conditional:
            # Embedding lookups = the original's one-hot label @ matrix.
            self.bias1 = nn.Parameter(torch.zeros(num_classes, in_channels))
            self.bias2 = nn.Parameter(torch.zeros(num_classes, out_channels))
            self.gain2 = nn.Parameter(torch.ones(num_classes, out_channels))
            self.shared_gain = nn.Parameter(torch.zeros(out_channels))

    def forward(self, x: Tensor, y: Tensor | None) -> Tensor:
        if self.conditional:
            hidden = self.conv1(x + self.bias1[y][:, :, None, None])
            hidden = F.leaky_relu(hidden, LEAKY_SLOPE)
            gain = (self.gain2[y] + self.shared_gain)[:, :, None, None]
            hidden = self.conv2(hidden + self.bias2[y][:, :, None, None]) * gain
        else:
            hidden = self.conv2(F.leaky_relu(self.conv1(x), LEAKY_SLOPE))
        shortcut = x if self.shortcut is None else self.shortcut(x)
        out = hidden + shortcut
        if self.downsample:
            out = F.avg_pool2d(out, 2)
        return F.leaky_relu(out, LEAKY_SLOPE)


class ResNet32Energy(nn.Module):
    """E(x, y) -> (B,) for x of shape (B, 3, H, W) in [0, 1] (H, W divisible by 8; 32 in the paper)."""

    def __init__(self, config: NetworkConfig) -> None:
        super().__init__()
        self.config = config
        w, k = config.num_filters, config.num_classes
        self.stem = SpectralConv2d(config.image_channels, w, bounded=False, init_std=1.0)
        self.blocks = nn.ModuleList(
            [
                ResidualBlock(w, w, num_classes=k, downsample=True),  # res_optim
                ResidualBlock(w, w, num_classes=k, downsample=False),  # res_1
                ResidualBlock(w, 2 * w, num_classes=k, downsample=True),  # res_2
                ResidualBlock(2 * w, 2 * w, num_classes=k, downsample=False),  # res_3
                ResidualBlock(2 * w, 2 * w, num_classes=k, downsample=True),  # res_4
                ResidualBlock(2 * w, 2 * w, num_classes=k, downsample=False),  # res_5
            ]
        )
        self.head = nn.Linear(2 * w, 1)
        nn.init.xavier_uniform_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    @property
    def conditional(self) -> bool:
        return self.config.num_classes > 0

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        if self.conditional and y is None:
            raise ValueError("this energy network is class-conditional: pass labels y")
        labels = y if self.conditional else None
        hidden = F.leaky_relu(self.stem(x), LEAKY_SLOPE)
        for block in self.blocks:
            hidden = block(hidden, labels)
        # Sum-pooling and the head stay in float32 under bf16 autocast: the sum covers many pixels.
        with torch.autocast(x.device.type, enabled=False):
            pooled = F.relu(hidden.float()).sum(dim=(2, 3))
            return self.head(pooled).squeeze(1)


def build_energy_network(config: NetworkConfig) -> ResNet32Energy:
    return ResNet32Energy(config)


def parameter_count(module: nn.Module) -> int:
    return sum(parameter.numel() for parameter in module.parameters())
