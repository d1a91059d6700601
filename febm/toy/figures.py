"""Figures 1-4 of the 1-D study (Section 6.1, Appendix F), as PNG and PDF (matplotlib, Agg, no LaTeX)."""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

import torch

from febm.divergences import get_divergence
from febm.quadrature import GaussianMixture, gaussian_log_pdf, simpson_grid
from febm.toy.convergence import read_convergence
from febm.toy.density import exact_log_ratio, learned_log_ratio, rejection_sample
from febm.toy.failures import is_failed
from febm.toy.optimum import divergence_integrand
from febm.toy.runs import ToyInputError, load_h, load_optimum, load_run
from febm.toy.settings import mixture_from_config
from febm.toy.table import BASELINE_ROWS
from febm.validation import DIVERGENCE_DISPLAY

COLOURS = {
    "data": "#1f77b4",
    "optimum": "#ff7f0e",
    "febm": "#d62728",
    "raw": "#e377c2",
    "corrected": "#2ca02c",
}


def pretty_name(divergence: str) -> str:
    names = {
        **DIVERGENCE_DISPLAY,
        "contrastive_divergence": "Contrastive divergence (KL)",
        "maximum_likelihood": "Maximum likelihood (KL)",
    }
    if divergence.startswith("alpha_"):
        return f"α-divergence, α = {divergence[6:]}"
    return names.get(divergence, divergence)


def _style():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    sns.set_theme(style="whitegrid", context="paper", font_scale=1.0)
    plt.rcParams.update({"text.usetex": False, "savefig.bbox": "tight", "figure.dpi": 100})
    return plt


def _panels(plt, count: int, width: float = 3.2, height: float = 2.5):
    columns = min(count, 3 if count <= 9 else 4)
    rows = math.ceil(count / columns)
    fig, axes = plt.subplots(
        rows, columns, figsize=(width * columns, height * rows), squeeze=False, layout="constrained"
    )
    flat = axes.ravel().tolist()
    for ax in flat[count:]:
        ax.set_visible(False)
    return fig, flat[:count]


def _figure_legend(fig, ax) -> None:
    handles, labels = ax.get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=len(labels), fontsize=8, frameon=False)


def _corner_note(ax, text: str) -> None:
    """A panel's summary numbers, pinned to its top-left corner (axes coordinates: any data range fits)."""
    ax.text(0.02, 0.97, text, transform=ax.transAxes, va="top", fontsize=7, family="monospace")


def _save(fig, out: str | Path, dpi: int) -> list[Path]:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    from febm.io import atomic_path

    written = []
    for path in (out.with_suffix(".png"), out.with_suffix(".pdf")):
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=dpi, format=path.suffix[1:])
        written.append(path)
    return written


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


def _density(log_pdf: torch.Tensor) -> list[float]:
    return torch.exp(log_pdf).tolist()


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
        name = divergence if method == "febm" else BASELINE_ROWS[method]
        ax.set_title(pretty_name(name), fontsize=10)
        _corner_note(
            ax, f"opt: μ {optimum['mu']:.3f}  σ {optimum['sigma']:.3f}\nfit: μ {mu:.3f}  σ {sigma:.3f}"
        )
        ax.set_xlabel("x")
    _figure_legend(fig, axes[0])
    fig.suptitle("Figure 1: Gaussian EBM fitted to the mixture with each f-divergence")
    return _save(fig, out, dpi)


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
    return _save(fig, out, dpi)


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
    return _save(fig, out, dpi)


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
    return _save(fig, out, dpi)


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
