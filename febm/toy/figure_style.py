"""The 1-D study's figure style, shared by Figures 1-4: colours, display names, the seaborn/Agg setup, panel
grids, legends, corner notes and the atomic PNG + PDF save."""

from __future__ import annotations

import math
from pathlib import Path

import torch

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


def _save(fig, out: str | Path, dpi: int, figure: str) -> list[Path]:
    """PNG and PDF, atomically; the PNG states which figure it is (``febm.figure``, e.g. ``figure1``, and
    ``febm.study``: toy), so the report reads that from the file, not from its name."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    from febm.images.grid import FIGURE_KEY, TEXT_PREFIX
    from febm.io import atomic_path

    identity = {FIGURE_KEY: figure, f"{TEXT_PREFIX}study": "toy"}
    written = []
    for path in (out.with_suffix(".png"), out.with_suffix(".pdf")):
        with atomic_path(path) as tmp:
            metadata = identity if path.suffix == ".png" else None  # PDF allows only its standard keys
            fig.savefig(tmp, dpi=dpi, format=path.suffix[1:], metadata=metadata)
        written.append(path)
    return written


def _density(log_pdf: torch.Tensor) -> list[float]:
    return torch.exp(log_pdf).tolist()
