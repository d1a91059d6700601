"""The f-divergence family against independent references (mpmath, numerical conjugates)."""

from __future__ import annotations

import functools
import math

import mpmath
import numpy as np
import pytest
import torch
from scipy.optimize import minimize_scalar

from febm.divergences import UnknownDivergenceError, available_divergences, get_divergence

PAPER_DIVERGENCES = [
    "kl",
    "reverse_kl",
    "jensen_shannon",
    "squared_hellinger",
    "pearson_x2",
    "neyman_x2",
    "alpha_-0.5",
    "alpha_-1",
    "alpha_0.9",
]
ALL_DIVERGENCES = [*PAPER_DIVERGENCES, "alpha_0.5", "alpha_2", "alpha_3.5"]

mpmath.mp.dps = 60


def reference_f(name: str, u: mpmath.mpf) -> mpmath.mpf:
    """Generators written out independently of febm, in arbitrary precision."""
    if name == "kl":
        return u * mpmath.log(u)
    if name == "reverse_kl":
        return -mpmath.log(u)
    if name == "jensen_shannon":
        return u * mpmath.log(u) - (u + 1) * mpmath.log((u + 1) / 2)
    if name == "squared_hellinger":
        return (mpmath.sqrt(u) - 1) ** 2
    if name == "pearson_x2":
        return (u - 1) ** 2
    if name == "neyman_x2":
        return (1 - u) ** 2 / u
    a = mpmath.mpf(name.split("_", 1)[1])
    return (u**a - 1 - a * (u - 1)) / (a * (a - 1))


@functools.cache
def reference_g_c(name: str, t: float) -> tuple[mpmath.mpf, mpmath.mpf]:
    u = mpmath.exp(mpmath.mpf(t))
    fprime = mpmath.diff(lambda v: reference_f(name, v), u)
    return fprime, u * fprime - reference_f(name, u)


def numeric_conjugate(f, s: float, with_edge: bool = False):
    """sup_{u>0} s*u - f(u) by bounded 1-D maximisation over log u (independent of febm's f*).

    With ``with_edge``, also says whether the maximum sits at the largest u tried (unbounded sup).
    """

    def negative(log_u: float) -> float:
        u = math.exp(log_u)
        return -(s * u - f(u))

    grid = np.linspace(-25, 25, 2001)
    values = np.array([negative(v) for v in grid])
    best_index = int(np.nanargmin(values))
    best = grid[best_index]
    result = minimize_scalar(
        negative, bounds=(best - 0.05, best + 0.05), method="bounded", options={"xatol": 1e-12}
    )
    value = -float(min(result.fun, np.nanmin(values)))
    return (value, best_index == len(grid) - 1) if with_edge else value


def as_float(x: torch.Tensor) -> float:
    return float(x.item())


@pytest.mark.parametrize("name", ALL_DIVERGENCES)
def test_generator_is_convex_with_f_of_one_zero(name):
    div = get_divergence(name)
    u = torch.logspace(-3, 3, 601, dtype=torch.float64)
    assert abs(as_float(div.f(torch.tensor([1.0], dtype=torch.float64)))) < 1e-12
    fu = div.f(u).numpy()
    x = u.numpy()
    slopes = np.diff(fu) / np.diff(x)
    assert np.all(np.diff(slopes) >= -1e-9 * (1 + np.abs(slopes[1:]))), "f is not convex"
    # f''(1) as declared, by a central second difference
    h = 1e-4
    one = torch.tensor([1 - h, 1.0, 1 + h], dtype=torch.float64)
    f3 = div.f(one)
    second = as_float((f3[0] - 2 * f3[1] + f3[2]) / h**2)
    assert second == pytest.approx(div.f_second_derivative_at_one, rel=1e-5)


@pytest.mark.parametrize("name", ALL_DIVERGENCES)
def test_f_prime_and_composites_match_definitions(name):
    div = get_divergence(name)
    t = torch.linspace(-8, 8, 161, dtype=torch.float64)
    u = torch.exp(t)
    u_req = u.clone().requires_grad_(True)
    (autograd_fprime,) = torch.autograd.grad(div.f(u_req).sum(), u_req)
    torch.testing.assert_close(div.f_prime(u), autograd_fprime, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(div.g(t), div.f_prime(u), rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(div.c(t), u * div.g(t) - div.f(u), rtol=1e-8, atol=1e-8)


@pytest.mark.parametrize("name", ALL_DIVERGENCES)
def test_c_equals_numerically_maximised_conjugate(name):
    div = get_divergence(name)

    def f(u: float) -> float:
        return as_float(div.f(torch.tensor([u], dtype=torch.float64)))

    for t in np.linspace(-3, 3, 13):
        s = as_float(div.g(torch.tensor([t], dtype=torch.float64)))
        expected = numeric_conjugate(f, s)
        assert as_float(div.c(torch.tensor([t], dtype=torch.float64))) == pytest.approx(
            expected, rel=1e-6, abs=1e-7
        )


@pytest.mark.parametrize("name", ALL_DIVERGENCES)
def test_conjugate_inside_and_outside_the_range_of_f_prime(name):
    div = get_divergence(name)

    def f(u: float) -> float:
        return as_float(div.f(torch.tensor([u], dtype=torch.float64)))

    for s in [-6.0, -2.5, -1.0, -0.2, 0.0, 0.3, 0.6, 0.95, 1.5, 3.0]:
        ours = as_float(div.conjugate(torch.tensor([s], dtype=torch.float64)))
        numeric, at_edge = numeric_conjugate(f, s, with_edge=True)
        if math.isinf(ours):
            assert ours > 0 and at_edge, f"f*({s}) should be unbounded, numeric sup {numeric}"
        else:
            assert not at_edge and ours == pytest.approx(numeric, rel=1e-5, abs=1e-6), f"f*({s})"


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name", PAPER_DIVERGENCES)
def test_composites_are_accurate_and_finite_for_extreme_t(name, dtype):
    """For t in [-60, 60]: accurate and finite wherever the true value fits in the dtype, never NaN."""
    div = get_divergence(name)
    ts = np.linspace(-60, 60, 121)
    t = torch.tensor(ts, dtype=dtype)
    info = torch.finfo(dtype)
    for fn, index in ((div.g, 0), (div.c, 1)):
        ours = fn(t)
        assert not torch.isnan(ours).any()
        for i, ti in enumerate(ts):
            ref = float(reference_g_c(name, ti)[index])
            value = float(ours[i])
            if abs(ref) < info.max * (1 - 1e-3):
                tol = 50 * info.eps * (abs(ref) + 1 + abs(ti))
                assert math.isfinite(value) and abs(value - ref) <= tol, (fn.__name__, ti, value, ref)
            else:
                assert value == math.copysign(math.inf, ref), (fn.__name__, ti, value, ref)


@pytest.mark.parametrize("name", PAPER_DIVERGENCES)
def test_gradients_are_finite_for_extreme_t(name):
    div = get_divergence(name)
    t = torch.linspace(-60, 60, 241, dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad((div.g(t) - div.c(t)).sum(), t)
    assert torch.isfinite(grad).all()


def test_alpha_minus_one_is_half_neyman():
    alpha, neyman = get_divergence("alpha_-1"), get_divergence("neyman_x2")
    u = torch.logspace(-3, 3, 50, dtype=torch.float64)
    torch.testing.assert_close(2 * alpha.f(u), neyman.f(u))


def test_exp_clamp_is_off_by_default_and_reproduces_the_original():
    t = torch.tensor([10.0, -10.0])
    assert as_float(get_divergence("kl").c(t[:1])) == pytest.approx(math.exp(10), rel=1e-6)
    clamped = get_divergence("kl", exp_clamp=5.0)
    assert as_float(clamped.c(t[:1])) == pytest.approx(math.exp(5), rel=1e-6)
    # JS quirk: only the exponential inside the softplus saturates, so g keeps growing linearly.
    js = get_divergence("jensen_shannon", exp_clamp=5.0)
    assert as_float(js.c(t[:1])) == pytest.approx(-math.log(2) + math.log1p(math.exp(5)), rel=1e-6)
    assert as_float(js.g(t[:1])) == pytest.approx(math.log(2) + 10 - math.log1p(math.exp(5)), rel=1e-6)
    with pytest.raises(ValueError, match="exp_clamp"):
        get_divergence("kl", exp_clamp=-1.0)


@pytest.mark.parametrize("bad", ["kld", "alpha_", "alpha_x", "Jensen-Shannon", ""])
def test_unknown_names_list_the_valid_ones(bad):
    with pytest.raises(UnknownDivergenceError) as info:
        get_divergence(bad)
    message = str(info.value)
    for name in [
        "kl",
        "reverse_kl",
        "jensen_shannon",
        "squared_hellinger",
        "pearson_x2",
        "neyman_x2",
        "alpha_",
    ]:
        assert name in message


@pytest.mark.parametrize("bad", ["alpha_0", "alpha_1", "alpha_1.0", "alpha_-0.0", "alpha_inf"])
def test_alpha_zero_or_one_is_rejected(bad):
    with pytest.raises(UnknownDivergenceError):
        get_divergence(bad)


def test_alpha_names_round_trip():
    assert get_divergence("alpha_-1").name == "alpha_-1"
    assert get_divergence("alpha_0.9").name == "alpha_0.9"
    assert get_divergence("alpha_-0.5").name == "alpha_-0.5"
    assert "kl" in available_divergences()
