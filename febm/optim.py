"""The one optimiser of both trainers: Adam with each gradient element clipped to a multiple of its RMS.

The original image code's ``custom_adam.py`` (docs/original-code.md, section 6) is TF's Adam with one
change: before the moment update, every gradient element is clipped to

    +-(clip_std * sqrt(v / (1 - beta2^k)) + clip_floor)

where v is the second-moment slot before this step; at the first step (v = 0) the bound is clip_floor.
Then, with t the step being taken,

    m_t = beta1 m + (1 - beta1) g,      v_t = beta2 v + (1 - beta2) g^2.

Two conventions exist in this repository, and which one an optimiser uses is explicit (:class:`AdamConvention`):

* :data:`ORIGINAL_ADAM` (the image trainer): ``custom_adam.py`` exactly. k = t (TF's beta2 power accumulator
  already holds beta2^t when the bound is computed) and TF's "epsilon hat" update
  ``theta -= lr sqrt(1 - beta2^t) / (1 - beta1^t) * m_t / (sqrt(v_t) + eps)``.
* :data:`TORCH_ADAM` (the 1-D study): k = t - 1 (the bias correction of v as it stands, i.e. the RMS Adam
  itself has estimated so far) and torch.optim.Adam's update
  ``theta -= lr / (1 - beta1^t) * m_t / (sqrt(v_t) / sqrt(1 - beta2^t) + eps)``, bit for bit. Table 5 was
  produced with it; switching the 1-D study to ORIGINAL_ADAM would change its numbers in the last digits.

``clip_std=None`` turns the clip off (plain Adam of the chosen convention).
``tests/test_optim.py`` checks both step by step against the formulas above written out in numpy.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor


@dataclass(frozen=True)
class AdamConvention:
    """Where the two Adam variants differ: the clip bound's bias correction and where epsilon goes."""

    name: str
    # The clip bound divides v by 1 - beta2^(t - clip_bias_lag), t the step being taken.
    clip_bias_lag: int
    # True: TF's eps, added to sqrt(v_t); False: torch's, added to sqrt(v_t / (1 - beta2^t)).
    epsilon_hat: bool


ORIGINAL_ADAM = AdamConvention("original", clip_bias_lag=0, epsilon_hat=True)
TORCH_ADAM = AdamConvention("torch", clip_bias_lag=1, epsilon_hat=False)


class ClippedAdam(torch.optim.Optimizer):
    """Adam with the per-element clip of ``custom_adam.py``, in the given :class:`AdamConvention`.

    Besides the usual ``step()`` (gradients in ``.grad``), :meth:`step_with` takes the gradient of a
    single-tensor optimiser directly (the 1-D study's hand-written backward), and :meth:`set_lr` sets
    the learning rate of every group (the 1-D schedule).
    """

    def __init__(
        self,
        params: Iterable[Tensor],
        lr: float,
        betas: tuple[float, float] = (0.0, 0.999),
        eps: float = 1e-8,
        clip_std: float | None = 3.0,
        clip_floor: float = 0.1,
        convention: AdamConvention = ORIGINAL_ADAM,
    ) -> None:
        if lr < 0 or eps <= 0:
            raise ValueError(f"lr must be >= 0 and eps positive, got lr={lr}, eps={eps}")
        if clip_std is not None and (clip_std < 0 or clip_floor < 0):
            raise ValueError(f"clip_std and clip_floor must be >= 0, got {clip_std}, {clip_floor}")
        # The convention is a property of the optimiser, not of a parameter group: a state dict saved by
        # either convention loads into the other, so the trainers' checkpoint settings key decides that.
        self.convention = convention
        defaults = {"lr": lr, "betas": betas, "eps": eps, "clip_std": clip_std, "clip_floor": clip_floor}
        super().__init__(params, defaults)

    def set_lr(self, lr: float) -> None:
        for group in self.param_groups:
            group["lr"] = lr

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:  # type: ignore[override]
        loss = None if closure is None else closure()
        for group in self.param_groups:
            for parameter in group["params"]:
                if parameter.grad is not None:
                    self._update(parameter, parameter.grad, group)
        return loss

    def step_with(self, grad: Tensor) -> None:
        """One step of a single-tensor optimiser with ``grad`` given (no ``.grad``, no step hooks: fast)."""
        (group,) = self.param_groups
        (parameter,) = group["params"]
        with torch.no_grad():
            self._update(parameter, grad, group)

    def _update(self, parameter: Tensor, grad: Tensor, group: dict[str, Any]) -> None:
        beta1, beta2 = group["betas"]
        state = self.state[parameter]
        if not state:
            state["step"] = 0
            state["exp_avg"] = torch.zeros_like(parameter, memory_format=torch.preserve_format)
            state["exp_avg_sq"] = torch.zeros_like(parameter, memory_format=torch.preserve_format)
        m, v = state["exp_avg"], state["exp_avg_sq"]
        taken = state["step"]  # steps before this one
        grad = self._clip(grad, v, taken, beta2, group["clip_std"], group["clip_floor"])
        step = taken + 1
        state["step"] = step
        # m + (1 - beta1)(g - m); with beta1 = 0 (the paper's image setting) exactly g.
        m.lerp_(grad, 1.0 - beta1)
        v.mul_(beta2).addcmul_(grad, grad, value=1.0 - beta2)
        bias1 = 1.0 - beta1**step
        bias2 = 1.0 - beta2**step
        if self.convention.epsilon_hat:
            parameter.addcdiv_(m, v.sqrt().add_(group["eps"]), value=-group["lr"] * math.sqrt(bias2) / bias1)
        else:  # torch.optim.Adam's arithmetic, operation for operation
            denom = v.sqrt().div_(bias2**0.5).add_(group["eps"])
            parameter.addcdiv_(m, denom, value=-group["lr"] / bias1)

    def _clip(
        self, grad: Tensor, v: Tensor, taken: int, beta2: float, clip_std: float | None, floor: float
    ) -> Tensor:
        if clip_std is None:
            return grad
        if taken == 0:  # no second moment yet: the bound is the floor in both conventions
            return grad.clamp(-floor, floor)
        correction = 1.0 - beta2 ** (taken + 1 - self.convention.clip_bias_lag)
        bound = v.div(correction).sqrt_().mul_(clip_std).add_(floor)
        return torch.minimum(torch.maximum(grad, -bound), bound)
