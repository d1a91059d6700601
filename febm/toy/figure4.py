"""Figure 4 of the 1-D study (Appendix F): trajectories from random initialisations over a contour map of
D_f(p || N(mu, sigma^2)), computed by quadrature (:func:`divergence_surface`)."""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path
from typing import Any

import torch

from febm.divergences import get_divergence
from febm.quadrature import GaussianMixture, gaussian_log_pdf, simpson_grid
from febm.toy.convergence import read_convergence
from febm.toy.figure_style import _panels, _save, _style, pretty_name
from febm.toy.optimum import divergence_integrand
from febm.toy.runs import ToyInputError
from febm.toy.settings import mixture_from_config


def divergence_surface(divergence: str, mixture: GaussianMixture, mus, sigmas, nodes: int = 2001):
    """D_f(p || N(mu, sigma^2)) on a (sigma, mu) grid by quadrature; NaN where it diverges."""
    div = get_divergence(divergence)
    lo, hi = mixture.support(10.0)
    lo = min(lo, min(mus) - 10 * max(sigmas))
    hi = max(hi, max(mus) + 10 * max(sigmas))
    x, w = simpson_grid(lo, hi, nodes)
    log_p = mixture.log_pdf(x)
    mu = torch.tensor(mus, dtype=torch.float64)[:, None]
    rows = []
    for sigma in sigmas:  # one sigma at a time: the whole grid at once would take ~1 GB
        integrand = divergence_integrand(
            div, log_p, gaussian_log_pdf(x, mu, torch.tensor(sigma, dtype=torch.float64))
        )
        values = (integrand * w).sum(-1)
        tails = torch.maximum(integrand[:, 0].abs(), integrand[:, -1].abs()) * (hi - lo)
        values[(~torch.isfinite(values)) | (tails > 1e-8 * values.abs().clamp(min=1.0))] = float("nan")
        rows.append(values)
    return torch.stack(rows)


def figure4(config, optima, runs, convergence_paths, out, dpi) -> list[Path]:
    """Trajectories from random initialisations over a contour map of D_f(p || q_{mu,sigma})."""
    if not convergence_paths:
        raise ToyInputError("figure 4 needs --convergence results/toy/convergence/<divergence>.csv files")
    plt = _style()
    import matplotlib.colors as mcolors
    import matplotlib.patheffects as patheffects

    mixture = mixture_from_config(config)
    trajectories: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for path in convergence_paths:
        for row in read_convergence(path):
            trajectories[row["divergence"]].append(row)
    divergences = [d for d in optima if d in trajectories] + sorted(
        d for d in trajectories if d not in optima
    )
    fig, axes = _panels(plt, len(divergences), width=3.4, height=3.0)
    conv = config["toy"]["convergence"]
    for ax, divergence in zip(axes, divergences, strict=True):
        rows = trajectories[divergence]
        mu_values = [r["mu"] for r in rows] + list(conv["mu_range"])
        sigma_values = [r["sigma"] for r in rows] + list(conv["sigma_range"])
        mus = torch.linspace(min(mu_values) - 0.3, max(mu_values) + 0.3, 70).tolist()
        sigmas = torch.linspace(max(0.2, min(sigma_values) - 0.3), max(sigma_values) + 0.3, 70).tolist()
        surface = divergence_surface(divergence, mixture, mus, sigmas)
        finite = surface[torch.isfinite(surface)]
        if finite.numel():
            floor = float(finite.min())
            shifted = (surface - floor + 1e-3).clamp(min=1e-3)
            levels = torch.logspace(
                -3, math.log10(float(shifted[torch.isfinite(shifted)].max())), 16
            ).tolist()
            ax.contourf(
                mus,
                sigmas,
                shifted.numpy(),
                levels=levels,
                norm=mcolors.LogNorm(),
                cmap="viridis",
                alpha=0.85,
            )
        for index in sorted({r["init"] for r in rows}):
            path = sorted((r for r in rows if r["init"] == index), key=lambda r: r["step"])
            # A dark outline keeps the white path visible where the map is blank (D_f not finite there).
            ax.plot(
                [r["mu"] for r in path],
                [r["sigma"] for r in path],
                color="white",
                lw=1.0,
                path_effects=[patheffects.Stroke(linewidth=2.2, foreground="black"), patheffects.Normal()],
            )
            ax.plot(path[0]["mu"], path[0]["sigma"], "o", color="white", ms=3.5, mec="black", mew=0.5)
            stopped = path[-1]["status"] != "completed"  # the loss became non-finite: where it stopped
            ax.plot(
                path[-1]["mu"],
                path[-1]["sigma"],
                "s" if stopped else "x",
                color="#d62728",
                ms=5,
                mfc="none" if stopped else None,
            )
        if divergence in optima:
            ax.plot(
                optima[divergence]["mu"],
                optima[divergence]["sigma"],
                "*",
                color="#ff7f0e",
                ms=11,
                mec="black",
                mew=0.6,
            )
        ax.set_xlabel("μ")
        ax.set_ylabel("σ")
        ax.set_title(pretty_name(divergence), fontsize=10)
    fig.suptitle(
        "Figure 4: f-EBM trajectories of (μ, σ) from random starts (○) to the end (×); "
        "★ exact optimum; colour: D_f(p‖q) above its minimum (log scale), blank where D_f is infinite",
        fontsize=10,
    )
    return _save(fig, out, dpi, "figure4")
