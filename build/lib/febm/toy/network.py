"""The variational function H of Section 6.1: an MLP 1 -> 64 -> 64 -> 1 with tanh.

Two implementations of the same network:

* :class:`FlatMLP` keeps every weight in one flat float32 vector and does forward and backward by hand
  (four matrix products per training iteration, no autograd graph over the network). The trainer's
  fast engine uses it; a single flat vector also makes the optimiser step one fused update.
* :func:`build_module` is the ordinary ``torch.nn.Sequential`` with the same weights, used by the plain
  autograd engine, for saving ``h.pt`` (a standard state dict) and as the reference the tests compare
  the hand-written gradients against.

tanh is evaluated as 2 sigmoid(2z) - 1, which torch's CPU kernels compute about twice as fast as
``torch.tanh`` (|error| < 2e-7 in float32, far below the Monte-Carlo noise of a 1000-sample batch).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class Layout:
    """Offsets of each weight in the flat parameter vector."""

    hidden: int

    @property
    def sizes(self) -> dict[str, tuple[int, ...]]:
        h = self.hidden
        return {"w1": (h,), "b1": (h,), "w2": (h, h), "b2": (h,), "w3": (h,), "b3": (1,)}

    @property
    def size(self) -> int:
        return sum(math.prod(shape) for shape in self.sizes.values())

    def views(self, flat: Tensor) -> dict[str, Tensor]:
        out, offset = {}, 0
        for name, shape in self.sizes.items():
            count = math.prod(shape)
            out[name] = flat[offset : offset + count].view(shape)
            offset += count
        return out


def tanh_(z: Tensor) -> Tensor:
    """In-place tanh via the logistic function (faster than torch.tanh on CPU)."""
    return z.mul_(2.0).sigmoid_().mul_(2.0).sub_(1.0)


class FlatMLP:
    """H(x) = w3 . tanh(W2 tanh(w1 x + b1) + b2) + b3 on a flat parameter vector ``flat``."""

    def __init__(self, flat: Tensor, hidden: int) -> None:
        self.layout = Layout(hidden)
        if flat.numel() != self.layout.size:
            raise ValueError(f"flat parameter vector has {flat.numel()} entries, expected {self.layout.size}")
        self.flat = flat
        self.p = self.layout.views(flat)

    @staticmethod
    def initial(
        hidden: int,
        generator: torch.Generator,
        dtype=torch.float32,
        first_layer_scale: float = 1.0,
        centre_range: tuple[float, float] | None = None,
    ) -> Tensor:
        """torch.nn.Linear's default initialisation, U(-1/sqrt(fan_in), 1/sqrt(fan_in)), drawn flat.

        ``first_layer_scale`` multiplies the first layer's bound (steeper tanh features). With
        ``centre_range`` the first-layer biases are set so that unit k switches at a point drawn
        uniformly from that range (b1 = -w1 * centre), spreading the features over the data instead
        of clustering their switch points around 0.
        """
        layout = Layout(hidden)
        fan_in = {"w1": 1, "b1": 1, "w2": hidden, "b2": hidden, "w3": hidden, "b3": hidden}
        pieces = {}
        for name, shape in layout.sizes.items():
            bound = 1.0 / math.sqrt(fan_in[name]) * (first_layer_scale if name in ("w1", "b1") else 1.0)
            pieces[name] = (torch.rand(math.prod(shape), generator=generator, dtype=dtype) * 2 - 1) * bound
        if centre_range is not None:
            lo, hi = centre_range
            centres = lo + (hi - lo) * torch.rand(hidden, generator=generator, dtype=dtype)
            pieces["b1"] = -pieces["w1"] * centres
        return torch.cat(list(pieces.values()))

    def forward(self, x: Tensor, keep: bool = True) -> tuple[Tensor, tuple[Tensor, Tensor] | None]:
        """H on a 1-D batch; with ``keep`` also the two hidden activations the backward pass needs."""
        p = self.p
        a1 = tanh_(torch.outer(x, p["w1"]).add_(p["b1"]))
        a2 = tanh_(torch.addmm(p["b2"], a1, p["w2"].t()))
        h = torch.addmv(p["b3"], a2, p["w3"])
        return h, ((a1, a2) if keep else None)

    def backward(self, x: Tensor, cache: tuple[Tensor, Tensor], grad_h: Tensor, out: Tensor) -> Tensor:
        """d loss / d flat into ``out`` given d loss / d H on the batch (the chain rule written out)."""
        a1, a2 = cache
        p, g = self.p, self.layout.views(out)
        g["b3"].copy_(grad_h.sum().view(1))
        torch.mv(a2.t(), grad_h, out=g["w3"])
        # d z2 = (grad_h w3^T) * (1 - a2^2); reuse a2's buffer, it is not needed afterwards.
        dz2 = a2.square_().neg_().add_(1.0).mul_(torch.outer(grad_h, p["w3"]))
        torch.mm(dz2.t(), a1, out=g["w2"])
        torch.sum(dz2, 0, out=g["b2"])
        dz1 = torch.mm(dz2, p["w2"]).mul_(a1.square_().neg_().add_(1.0))
        torch.mv(dz1.t(), x, out=g["w1"])
        torch.sum(dz1, 0, out=g["b1"])
        return out


def build_module(hidden: int) -> torch.nn.Sequential:
    return torch.nn.Sequential(
        torch.nn.Linear(1, hidden),
        torch.nn.Tanh(),
        torch.nn.Linear(hidden, hidden),
        torch.nn.Tanh(),
        torch.nn.Linear(hidden, 1),
    )


def flat_to_state_dict(flat: Tensor, hidden: int) -> dict[str, Tensor]:
    """The nn.Sequential state dict holding the same weights as ``flat`` (copies)."""
    v = Layout(hidden).views(flat.detach())
    return {
        "0.weight": v["w1"].reshape(hidden, 1).clone(),
        "0.bias": v["b1"].clone(),
        "2.weight": v["w2"].clone(),
        "2.bias": v["b2"].clone(),
        "4.weight": v["w3"].reshape(1, hidden).clone(),
        "4.bias": v["b3"].clone(),
    }


def state_dict_to_flat(state: dict[str, Tensor]) -> Tensor:
    return torch.cat(
        [
            state["0.weight"].reshape(-1),
            state["0.bias"],
            state["2.weight"].reshape(-1),
            state["2.bias"],
            state["4.weight"].reshape(-1),
            state["4.bias"],
        ]
    )


def module_from_flat(flat: Tensor, hidden: int) -> torch.nn.Sequential:
    module = build_module(hidden).to(flat.dtype)
    module.load_state_dict(flat_to_state_dict(flat, hidden))
    return module
