"""Adam as in the original's ``custom_adam.py`` (docs/original-code.md §6).

It is TF's Adam ("epsilon hat" form) with one change: before the moment update, every gradient
element is clipped to +-(3 * sqrt(v_{t-1} / (1 - beta2^t)) + 0.1), where v is the second-moment slot.
At step 1 (v = 0) the bound is 0.1. The update is

    m_t = beta1 m + (1 - beta1) g,   v_t = beta2 v + (1 - beta2) g^2
    theta -= lr * sqrt(1 - beta2^t) / (1 - beta1^t) * m_t / (sqrt(v_t) + eps)

The paper's setting is lr 3e-4, beta1 = 0, beta2 = 0.999, eps = 1e-8.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import Tensor


class ClippedAdam(torch.optim.Optimizer):
    def __init__(
        self,
        params: Iterable[Tensor],
        lr: float = 3e-4,
        betas: tuple[float, float] = (0.0, 0.999),
        eps: float = 1e-8,
        clip_std: float = 3.0,
        clip_floor: float = 0.1,
    ) -> None:
        if lr <= 0 or eps <= 0:
            raise ValueError(f"lr and eps must be positive, got lr={lr}, eps={eps}")
        defaults = {"lr": lr, "betas": betas, "eps": eps, "clip_std": clip_std, "clip_floor": clip_floor}
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):  # type: ignore[override]
        loss = None if closure is None else closure()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for parameter in group["params"]:
                if parameter.grad is None:
                    continue
                state = self.state[parameter]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(parameter, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(parameter, memory_format=torch.preserve_format)
                state["step"] += 1
                step = state["step"]
                m, v = state["exp_avg"], state["exp_avg_sq"]
                bias2 = 1.0 - beta2**step
                bound = v.div(bias2).sqrt_().mul_(group["clip_std"]).add_(group["clip_floor"])
                grad = torch.minimum(torch.maximum(parameter.grad, -bound), bound)
                m.mul_(beta1).add_(grad, alpha=1.0 - beta1)
                v.mul_(beta2).addcmul_(grad, grad, value=1.0 - beta2)
                step_size = group["lr"] * math.sqrt(bias2) / (1.0 - beta1**step)
                parameter.addcdiv_(m, v.sqrt().add_(group["eps"]), value=-step_size)
        return loss
