"""Figures 1-4 of the 1-D study (Section 6.1, Appendix F), as PNG and PDF (matplotlib, Agg, no LaTeX).

Figures 1-3 and the dispatcher :func:`make_figure` are here; Figure 4 is ``febm/toy/figure4.py``, the shared
style ``febm/toy/figure_style.py`` (both re-exported).
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

import torch

from febm.quadrature import gaussian_log_pdf
from febm.toy.density import exact_log_ratio, learned_log_ratio, rejection_sample
from febm.toy.failures import is_failed
from febm.toy.figure4 import divergence_surface, figure4
from febm.toy.figure_style import (
    COLOURS,
    _corner_note,
    _density,
    _figure_legend,
    _panels,
    _save,
    _style,
    pretty_name,
)
from febm.toy.runs import ToyInputError, load_h, load_optimum, load_run
from febm.toy.settings import mixture_from_config
from febm.toy.table import BASELINE_ROWS

BASELINE_TITLES = {"cd": "contrastive_divergence", "mle": "maximum_likelihood"}  # pretty_name's keys

__all__ = [
    "COLOURS",
    "divergence_surface",
    "figure1",
    "figure2",
    "figure3",
    "figure4",
    "make_figure",
    "pretty_name",
]


def _collect(optimum_paths, run_dirs):
    optima = {}
    for path in optimum_paths:
        optimum = load_optimum(path)
        optima[optimum["divergence"]] = optimum
    runs: dict[tuple[str, str], list[tuple[Path, dict[str, Any]]]] = defaultdict(list)
    for run_dir in run_dirs:
        metrics = load_run(run_dir)
        if is_failed(metrics):  # nothing learned to draw; Table 5 counts it
            continue
        runs[(metrics["method"], metrics["divergence"])].append((Path(run_dir), metrics))
    for key in runs:
        runs[key].sort(key=lambda item: item[1]["seed"])
    return optima, runs


def _febm_divergences(optima, runs) -> list[str]:
    ordered = [d for d in optima if ("febm", d) in runs]
    return ordered + sorted(d for (m, d) in runs if m == "febm" and d not in ordered)


def figure1(config, optima, runs, out, dpi) -> list[Path]:
    """One panel per divergence: data density, exact optimum, f-EBM fit (seed mean)."""
    plt = _style()
    mixture = mixture_from_config(config)
    panels = [("febm", d) for d in _febm_divergences(optima, runs)]
    panels += [(m, "kl") for m in BASELINE_ROWS if (m, "kl") in runs]
    fig, axes = _panels(plt, len(panels))
    x = torch.linspace(*mixture.support(3.0), 600, dtype=torch.float64)
    for ax, (method, divergence) in zip(axes, panels, strict=True):
        optimum, seeds = optima[divergence], [m for _, m in runs[(method, divergence)]]
        mu = statistics.fmean(m["mu"] for m in seeds)
        sigma = statistics.fmean(m["sigma"] for m in seeds)
        ax.plot(x, _density(mixture.log_pdf(x)), color=COLOURS["data"], lw=1.8, label="data p")
        ax.plot(
            x,
            _density(gaussian_log_pdf(x, optimum["mu"], optimum["sigma"])),
            color=COLOURS["optimum"],
            lw=1.8,
            label="exact optimum",
        )
        label = "f-EBM" if method == "febm" else {"cd": "CD", "mle": "MLE"}[method]
        ax.plot(
            x,
            _density(gaussian_log_pdf(x, mu, sigma)),
            color=COLOURS["febm"],
            lw=1.6,
            ls="--",
            label=f"{label} ({len(seeds)} seeds)",
        )
        name = divergence if method == "febm" else BASELINE_TITLES[method]
        ax.set_title(pretty_name(name), fontsize=10)
        _corner_note(
            ax, f"opt: μ {optimum['mu']:.3f}  σ {optimum['sigma']:.3f}\nfit: μ {mu:.3f}  σ {sigma:.3f}"
        )
        ax.set_xlabel("x")
    _figure_legend(fig, axes[0])
    fig.suptitle("Figure 1: Gaussian EBM fitted to the mixture with each f-divergence")
    return _save(fig, out, dpi, "figure1")


def figure2(config, optima, runs, out, dpi) -> list[Path]:
    """Rejection sampling with the learned ratio exp(H + E): histograms with and without correction."""
    plt = _style()
    mixture = mixture_from_config(config)
    divergences = _febm_divergences(optima, runs)
    fig, axes = _panels(plt, len(divergences))
    settings = config["toy"]["density_ratio"]
    x = torch.linspace(*mixture.support(3.0), 600, dtype=torch.float64)
    for ax, divergence in zip(axes, divergences, strict=True):
        run_dir, metrics = runs[("febm", divergence)][0]
        h = load_h(run_dir)
        flat = _flat(h)
        generator = torch.Generator().manual_seed(settings["seed"] + metrics["seed"])
        proposals = metrics["mu"] + metrics["sigma"] * torch.randn(
            settings["proposals"], generator=generator, dtype=torch.float64
        )
        log_ratio = learned_log_ratio(flat, h["hidden_units"], metrics["mu"], metrics["sigma"], proposals)
        result = rejection_sample(log_ratio, proposals, generator)
        bins = torch.linspace(float(x[0]), float(x[-1]), 70).tolist()
        ax.hist(
            proposals.tolist(), bins=bins, density=True, color=COLOURS["raw"], alpha=0.45, label="EBM samples"
        )
        ax.hist(
            result.accepted.tolist(),
            bins=bins,
            density=True,
            color=COLOURS["corrected"],
            alpha=0.55,
            label="after rejection sampling",
        )
        ax.plot(x, _density(mixture.log_pdf(x)), color=COLOURS["data"], lw=1.8, label="data p")
        dr = metrics.get("density_ratio", {})
        ax.set_title(pretty_name(divergence), fontsize=10)
        if dr:
            _corner_note(
                ax,
                f"KS {dr['model_ks']:.3f} → {dr['corrected_ks']:.3f}\n"
                f"accept {100 * dr['corrected_acceptance_rate']:.1f}%",
            )
        ax.set_xlabel("x")
    _figure_legend(fig, axes[0])
    fig.suptitle("Figure 2: bias correction by rejection sampling with the learned density ratio")
    return _save(fig, out, dpi, "figure2")


def figure3(config, optima, runs, out, dpi) -> list[Path]:
    """Learned log ratio H + E against the exact log p/q_theta, with the data density for reference."""
    plt = _style()
    mixture = mixture_from_config(config)
    divergences = _febm_divergences(optima, runs)
    fig, axes = _panels(plt, len(divergences))
    x = torch.linspace(*mixture.support(3.0), 600, dtype=torch.float64)
    for ax, divergence in zip(axes, divergences, strict=True):
        for index, (run_dir, metrics) in enumerate(runs[("febm", divergence)]):
            h = load_h(run_dir)
            learned = learned_log_ratio(_flat(h), h["hidden_units"], metrics["mu"], metrics["sigma"], x)
            ax.plot(
                x,
                learned.tolist(),
                color=COLOURS["febm"],
                lw=1.0,
                ls="--",
                alpha=0.6,
                label="learned H + E (each seed)" if index == 0 else None,
            )
        run_dir, metrics = runs[("febm", divergence)][0]
        exact = exact_log_ratio(mixture, metrics["mu"], metrics["sigma"], x)
        ax.plot(x, exact.tolist(), color="black", lw=1.4, label="exact log p/q")
        ax.set_ylim(max(float(exact.min()), -8.0) - 0.5, float(exact.max()) + 1.5)
        twin = ax.twinx()
        twin.fill_between(x.tolist(), _density(mixture.log_pdf(x)), color=COLOURS["data"], alpha=0.15, lw=0)
        twin.set_yticks([])
        twin.grid(False)
        ax.set_title(pretty_name(divergence), fontsize=10)
        ax.set_xlabel("x")
    _figure_legend(fig, axes[0])
    fig.suptitle("Figure 3: learned vs exact log density ratio (shaded: data density)")
    return _save(fig, out, dpi, "figure3")


def _flat(h: dict[str, Any]) -> torch.Tensor:
    from febm.toy.network import state_dict_to_flat

    if not h["state_dict"]:
        raise ToyInputError(f"run of method {h['method']!r} has no variational function H")
    return state_dict_to_flat(h["state_dict"])


def make_figure(
    number: int,
    config: dict[str, Any],
    optimum_paths: list[str | Path],
    run_dirs: list[str | Path],
    out: str | Path,
    convergence_paths: list[str | Path] | None = None,
) -> list[Path]:
    optima, runs = _collect(optimum_paths, run_dirs)
    dpi = config["toy"]["figures"]["dpi"]
    if number == 4:
        return figure4(config, optima, runs, convergence_paths or [], out, dpi)
    if not any(m == "febm" for m, _ in runs):
        raise ToyInputError(
            "no f-EBM runs among --runs; pass results/toy/runs/febm/<divergence>/seed<S> folders"
        )
    return {1: figure1, 2: figure2, 3: figure3}[number](config, optima, runs, out, dpi)
