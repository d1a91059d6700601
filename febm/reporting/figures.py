"""Figures and sample grids for the report, embedded as base64 or copied beside index.html."""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from febm.evaluation.classifier_curve import CURVE_FIGURE
from febm.images.grid import SAMPLE_GRIDS, UNCURATED_GRID, read_figure_text
from febm.io import write_bytes_atomic
from febm.reporting.errors import ReportInputError
from febm.runspec import IDENTITY_FIELDS

FIGURE_CAPTIONS = {
    1: "Figure 1. The Gaussian energy model learned with each f-divergence, over the data mixture "
    "(Section 6.1): the choice of divergence decides which part of the mixture the model covers.",
    2: "Figure 2. Rejection sampling with the learned density ratio exp(H + E) moves samples of the "
    "misspecified model towards the data distribution (Section 6.1).",
    3: "Figure 3. The learned density ratio against the true one (Appendix F.2): accurate where the "
    "data has mass, less so in low-density regions.",
    4: "Figure 4. Single-step f-EBM converges to the divergence's optimum from different "
    "initialisations (Appendix F.3).",
}
MIME_TYPES = {".png": "image/png", ".svg": "image/svg+xml", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}
FIGURE_NUMBER = re.compile(r"figure(\d+)")


@dataclass
class Picture:
    src: str
    caption: str
    labels: list[str] = field(default_factory=list)
    anchor: str = ""
    dataset: str = ""  # of a sample grid: the image study it belongs to, as the PNG states
    # of a sample grid: written by `febm image-figure --figure grid` (class rows when conditional) rather
    # than a training run's samples.png (a plain near-square grid); the PNG states which
    uncurated_grid: bool = False


def picture_source(path: Path, out_dir: Path, embed: bool, copy_name: str) -> str:
    """A data: URI of the image, or the relative path of a copy beside the report."""
    if not path.is_file():
        raise ReportInputError(f"figure {str(path)!r} does not exist")
    mime = MIME_TYPES.get(path.suffix.lower())
    if mime is None:
        raise ReportInputError(f"figure {str(path)!r}: use PNG, JPEG or SVG (got {path.suffix!r})")
    if embed:
        return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode('ascii')}"
    write_bytes_atomic(out_dir / "figures" / copy_name, path.read_bytes())  # a kill leaves no half image
    return f"figures/{copy_name}"


def figure_text(path: Path, what: str, rerun: str) -> dict[str, str]:
    """The ``febm.*`` text chunks a figure's PNG states about itself; an error where it states none."""
    if not path.is_file():
        raise ReportInputError(f"{what} {str(path)!r} does not exist")
    try:
        text = read_figure_text(path)
    except OSError as error:  # PIL's UnidentifiedImageError is one
        raise ReportInputError(f"{what} {str(path)!r} is not a PNG the report can read: {error}") from None
    if "figure" not in text:
        raise ReportInputError(
            f"{what} {str(path)!r} does not say which figure it is: written by an older febm or another "
            f"program; rerun `snakemake --forcerun {rerun}`"
        )
    return text


def figure_number(path: Path) -> int:
    """N of a 1-D study figure (Figures 1-4), as its PNG states it (``febm.figure: figure<N>``)."""
    text = figure_text(path, "figure", "toy_figure")
    match = FIGURE_NUMBER.fullmatch(text["figure"])
    if match is None or text.get("study") != "toy":
        raise ReportInputError(
            f"{str(path)!r} is a {text['figure']!r} figure, not one of the 1-D study's Figures 1-4: pass "
            "results/figures/figure<N>.png (febm toy-figure) to --figures"
        )
    return int(match.group(1))


def paper_figures(paths: list[Path], out_dir: Path, embed: bool, labels: list[str]) -> dict[int, Picture]:
    figures: dict[int, Picture] = {}
    for path in {path.resolve(): path for path in paths}.values():  # one file given twice counts once
        number = figure_number(path)
        if number in figures:
            raise ReportInputError(f"two files of Figure {number}, one of them {str(path)!r}: pass one")
        figures[number] = Picture(
            src=picture_source(path, out_dir, embed, f"figure{number}.png"),
            caption=FIGURE_CAPTIONS.get(number, f"Figure {number}."),
            labels=list(labels),
            anchor=f"figure{number}",
        )
    return figures


def grid_identity(path: Path) -> tuple[list[str], str]:
    """([dataset, method, divergence, seed<S>], figure kind) as a sample grid's PNG states them."""
    if not path.is_file():
        raise ReportInputError(f"sample grid {str(path)!r} does not exist")
    try:
        text = read_figure_text(path)
    except OSError as error:  # PIL's UnidentifiedImageError is one
        raise ReportInputError(
            f"sample grid {str(path)!r} is not a PNG the report can read: {error}"
        ) from None
    figure = text.get("figure")
    if figure is not None and figure not in SAMPLE_GRIDS:
        raise ReportInputError(
            f"{str(path)!r} is a {figure!r} figure, not a sample grid: pass the grids of `febm image-figure "
            "--figure grid` (results/figures/samples/) or the training runs' samples.png to --samples"
        )
    if figure is None or any(key not in text for key in IDENTITY_FIELDS):
        raise ReportInputError(
            f"sample grid {str(path)!r} has no run identity: written by an older febm; rerun "
            "`snakemake --forcerun sample_grid` (uncurated grids) or its training run (samples.png)"
        )
    return [text["dataset"], text["method"], text["divergence"], f"seed{text['seed']}"], figure


def sample_grids(
    paths: list[Path], out_dir: Path, embed: bool, labels_of: dict[str, list[str]]
) -> list[Picture]:
    """One grid per image run, placed by the run identity and kind its PNG states (febm.images.grid)."""
    grids: list[Picture] = []
    seen: dict[str, Path] = {}
    for path in {path.resolve(): path for path in paths}.values():  # one file given twice counts once
        run, figure = grid_identity(path)
        name = "_".join(run)
        if name in seen:  # one anchor and one copied file per run
            raise ReportInputError(
                f"two sample grids of {' / '.join(run)}: {str(seen[name])!r} and {str(path)!r}; pass one per run"
            )
        seen[name] = path
        grids.append(
            Picture(
                src=picture_source(path, out_dir, embed, f"samples_{name}{path.suffix}"),
                caption=" / ".join(run),
                labels=list(labels_of.get(run[0], [])),
                anchor=f"samples-{name}",
                dataset=run[0],
                uncurated_grid=figure == UNCURATED_GRID,
            )
        )
    return grids


def curve_caption(training: Mapping[str, Any]) -> str:
    """What the quality-vs-iteration figure shows, with the monitor settings its runs were trained with."""
    interval = training["monitor_interval"]
    every = "every training iteration" if interval == 1 else f"every {interval:,} training iterations"
    return (
        "Sample quality during training: the persistent replay-buffer chains (the newest "
        f"{training['monitor_samples']:,} of them) scored {every} (training.monitor_interval) by the frozen "
        "classifier that scores the table above: conditional accuracy, classifier FID and the Inception "
        "Score formula against training iteration, mean over seeds per method and divergence. Dashed: the "
        "train split and uniform noise, the table's reference rows. These are the training chains, not the "
        "table's final samples, so the last point need not equal the table's numbers."
    )


def curve_figures(
    paths: list[Path],
    out_dir: Path,
    embed: bool,
    labels_of: Mapping[str, list[str]],
    captions: Mapping[str, str],
) -> dict[str, Picture]:
    """The quality-vs-iteration figure per dataset; `captions` names the datasets whose section shows one."""
    curves: dict[str, Picture] = {}
    for path in {path.resolve(): path for path in paths}.values():  # one file given twice counts once
        text = figure_text(path, "curve", "classifier_curve")
        dataset = text.get("dataset", "")
        if text["figure"] != CURVE_FIGURE or dataset not in captions:
            raise ReportInputError(
                f"{str(path)!r} is a {text['figure']!r} figure of {dataset or 'no dataset'!r}: the report shows "
                f"the quality-vs-iteration curves (febm classifier-curve) of {', '.join(captions) or 'no dataset'}"
            )
        if dataset in curves:
            raise ReportInputError(f"two curve files for {dataset}: drop one of them")
        curves[dataset] = Picture(
            src=picture_source(path, out_dir, embed, f"{dataset}_curve.png"),
            caption=captions[dataset],
            labels=list(labels_of.get(dataset, [])),
            anchor=f"{dataset}-curve",
            dataset=dataset,
        )
    return curves
