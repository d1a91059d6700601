"""febm.optim.ClippedAdam against the released custom_adam.py's formula, written out here in numpy.

The formula is the one docs/original-code.md (section 6) states for ``custom_adam.py``: with t the step
being taken and v the second moment before it, clip g to +-(3 sqrt(v / (1 - beta2^t)) + 0.1), then
m = beta1 m + (1 - beta1) g, v = beta2 v + (1 - beta2) g^2 and
theta -= lr sqrt(1 - beta2^t) / (1 - beta1^t) m / (sqrt(v) + eps).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from febm.optim import ORIGINAL_ADAM, TORCH_ADAM, ClippedAdam

CLIP, FLOOR = 3.0, 0.1


def custom_adam_reference(theta, grads, lr, beta1, beta2, eps):
    """custom_adam.py's update, step by step; returns every iterate and whether the clip was active."""
    m, v, iterates, clipped = np.zeros_like(theta), np.zeros_like(theta), [], False
    for t, g in enumerate(grads, start=1):
        bound = CLIP * np.sqrt(v / (1.0 - beta2**t)) + FLOOR
        clipped |= bool(np.any(np.abs(g) > bound))
        g = np.clip(g, -bound, bound)
        m = beta1 * m + (1.0 - beta1) * g
        v = beta2 * v + (1.0 - beta2) * g * g
        theta = theta - lr * np.sqrt(1.0 - beta2**t) / (1.0 - beta1**t) * m / (np.sqrt(v) + eps)
        iterates.append(theta)
    return iterates, clipped


def torch_convention_reference(theta, grads, lr, beta1, beta2, eps):
    """The 1-D study's variant: the clip bound corrected by beta2^(t-1) (floor at t = 1), torch's epsilon."""
    m, v, iterates = np.zeros_like(theta), np.zeros_like(theta), []
    for t, g in enumerate(grads, start=1):
        bound = FLOOR if t == 1 else CLIP * np.sqrt(v / (1.0 - beta2 ** (t - 1))) + FLOOR
        g = np.clip(g, -bound, bound)
        m = beta1 * m + (1.0 - beta1) * g
        v = beta2 * v + (1.0 - beta2) * g * g
        theta = theta - lr / (1.0 - beta1**t) * m / (np.sqrt(v) / np.sqrt(1.0 - beta2**t) + eps)
        iterates.append(theta)
    return iterates


def heavy_tailed_gradients(steps: int = 30, size: int = 7, seed: int = 0) -> list[np.ndarray]:
    """Mostly small gradients with rare large ones, so that the clip bites at some steps only."""
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(size) * np.where(rng.random(size) < 0.15, 40.0, 0.3) for _ in range(steps)]


def run_optimiser(convention, theta0, grads, lr, betas, eps, use_step_with=False):
    parameter = torch.nn.Parameter(torch.tensor(theta0, dtype=torch.float64))
    optimiser = ClippedAdam([parameter], lr, betas, eps, CLIP, FLOOR, convention)
    iterates = []
    for g in grads:
        if use_step_with:
            optimiser.step_with(torch.tensor(g))
        else:
            parameter.grad = torch.tensor(g)
            optimiser.step()
        iterates.append(parameter.detach().numpy().copy())
    return iterates


@pytest.mark.parametrize("beta1", [0.0, 0.5])  # 0: the paper's image setting; 0.5 exercises the first moment
def test_original_convention_is_custom_adam_step_by_step(beta1):
    theta0, grads = np.linspace(-1.0, 1.0, 7), heavy_tailed_gradients()
    settings = {"lr": 0.01, "beta1": beta1, "beta2": 0.9, "eps": 1e-2}  # eps large enough to matter
    expected, clipped = custom_adam_reference(theta0, grads, **settings)
    assert clipped  # the gradients do reach the bound, so the clip convention is tested
    betas = (beta1, settings["beta2"])
    ours = run_optimiser(ORIGINAL_ADAM, theta0, grads, settings["lr"], betas, settings["eps"])
    for step, (mine, reference) in enumerate(zip(ours, expected, strict=True), start=1):
        np.testing.assert_allclose(mine, reference, rtol=1e-12, atol=1e-15, err_msg=f"step {step}")
    # The other convention is a different optimiser: this test would notice a swapped convention.
    other = run_optimiser(TORCH_ADAM, theta0, grads, settings["lr"], betas, settings["eps"])
    assert np.abs(other[-1] - expected[-1]).max() > 1e-6


def test_torch_convention_is_its_documented_formula_step_by_step():
    theta0, grads = np.linspace(-1.0, 1.0, 7), heavy_tailed_gradients(seed=1)
    expected = torch_convention_reference(theta0, grads, lr=0.01, beta1=0.9, beta2=0.9, eps=1e-2)
    ours = run_optimiser(TORCH_ADAM, theta0, grads, 0.01, (0.9, 0.9), 1e-2)
    for step, (mine, reference) in enumerate(zip(ours, expected, strict=True), start=1):
        np.testing.assert_allclose(mine, reference, rtol=1e-12, atol=1e-15, err_msg=f"step {step}")


def test_torch_convention_without_clip_is_torch_adam_bit_for_bit():
    generator = torch.Generator().manual_seed(1)
    start = torch.randn(20, generator=generator)
    ours_param, reference = start.clone().requires_grad_(True), start.clone().requires_grad_(True)
    ours = ClippedAdam([ours_param], 0.01, (0.9, 0.999), clip_std=None, convention=TORCH_ADAM)
    torch_adam = torch.optim.Adam([reference], lr=0.01, betas=(0.9, 0.999))
    for _ in range(25):
        grad = torch.randn(20, generator=generator)
        ours.step_with(grad)
        reference.grad = grad.clone()
        torch_adam.step()
        assert torch.equal(ours_param.detach(), reference.detach())


@pytest.mark.parametrize("convention", [ORIGINAL_ADAM, TORCH_ADAM], ids=lambda c: c.name)
def test_step_with_and_resume_from_a_state_dict_are_bit_identical(convention):
    theta0, grads = np.linspace(-1.0, 1.0, 7), heavy_tailed_gradients(seed=2)
    through_grad = run_optimiser(convention, theta0, grads, 0.01, (0.9, 0.999), 1e-8)
    direct = run_optimiser(convention, theta0, grads, 0.01, (0.9, 0.999), 1e-8, use_step_with=True)
    assert all(np.array_equal(a, b) for a, b in zip(through_grad, direct, strict=True))
    # Stop after 10 steps, save, rebuild, load, continue: the same iterates.
    parameter = torch.nn.Parameter(torch.tensor(theta0))
    first = ClippedAdam([parameter], 0.01, (0.9, 0.999), convention=convention)
    for g in grads[:10]:
        first.step_with(torch.tensor(g))
    saved, resumed_parameter = first.state_dict(), torch.nn.Parameter(parameter.detach().clone())
    second = ClippedAdam([resumed_parameter], 0.01, (0.9, 0.999), convention=convention)
    second.load_state_dict(saved)
    for g in grads[10:]:
        second.step_with(torch.tensor(g))
    assert np.array_equal(resumed_parameter.detach().numpy(), through_grad[-1])
