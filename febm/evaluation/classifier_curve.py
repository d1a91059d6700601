"""The figure of sample quality against training iteration of a classifier-scored dataset: each run's
``monitor.csv`` (febm.images.monitor), mean over seeds per method and divergence, with the reference rows
(train split, uniform noise) as dashed lines. Run identity comes from each run's ``metrics.json``."""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from febm.errors import FebmError
from febm.images.grid import FIGURE_KEY, TEXT_PREFIX
from febm.validation import DIVERGENCE_DISPLAY

PANELS = {
    "conditional_accuracy": "conditional accuracy",
    "fid": "classifier FID",
    "inception_score": "IS formula",
}
CURVE_FIGURE = "classifier_curve"  # the PNG's febm.figure
REFERENCE_NAMES = {"reference_train": "train split", "reference_noise": "uniform noise"}


class CurveError(FebmError):
    """Run folders without a monitor log, or unreadable files."""


def _read_run(run_dir: Path) -> tuple[tuple[str, str], list[dict[str, float]]]:
    from febm.images.monitor import MONITOR_FIELDS  # torch: imported when a figure is made, not at startup

    try:
        record = json.loads((run_dir / "metrics.json").read_text())
        with (run_dir / "monitor.csv").open(newline="") as handle:
            rows = list(csv.DictReader(handle))
    except (OSError, json.JSONDecodeError) as error:
        raise CurveError(f"run folder {str(run_dir)!r}: {error}; rerun its training") from None
    parsed = [
        {key: float(row[key]) for key in MONITOR_FIELDS if row.get(key) not in (None, "")} for row in rows
    ]
    return (record["method"], record["divergence"]), parsed


def _dataset_of(run_dir: Path) -> str:
    try:
        return str(json.loads((run_dir / "metrics.json").read_text())["dataset"])
    except (OSError, json.JSONDecodeError, KeyError) as error:
        raise CurveError(
            f"run folder {str(run_dir)!r}: no dataset in metrics.json ({error}); rerun its training"
        ) from None


def curves(run_dirs: list[Path]) -> dict[tuple[str, str], dict[str, list[tuple[float, float]]]]:
    """(method, divergence) -> metric -> [(iteration, mean over seeds)]."""
    pooled: dict[tuple[str, str], dict[str, dict[float, list[float]]]] = defaultdict(
        lambda: defaultdict(lambda: defaultdict(list))
    )
    for run_dir in run_dirs:
        key, rows = _read_run(Path(run_dir))
        for row in rows:
            for metric in PANELS:
                if metric in row:
                    pooled[key][metric][row["iteration"]].append(row[metric])
    return {
        key: {m: sorted((it, sum(v) / len(v)) for it, v in points.items()) for m, points in metrics.items()}
        for key, metrics in pooled.items()
    }


def label_of(method: str, divergence: str) -> str:
    if method == "cd":
        return "contrastive divergence"
    if method == "dual":
        return f"dual form (Theorem 1), {DIVERGENCE_DISPLAY.get(divergence, divergence)}"
    return f"f-EBM, {DIVERGENCE_DISPLAY.get(divergence, divergence)}"


def make_curve_figure(
    run_dirs: list[Path], references: list[Path], out: Path, title: str = ""
) -> dict[str, Any]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from febm.io import atomic_path

    datasets = {_dataset_of(run_dir) for run_dir in run_dirs}
    if len(datasets) != 1:
        raise CurveError(f"one curve per dataset: the run folders are of {sorted(datasets) or 'none'}")
    (dataset,) = datasets
    data = curves(run_dirs)
    if not any(points for metrics in data.values() for points in metrics.values()):
        raise CurveError("no monitor rows in any run: set images.<dataset>.training.monitor_interval > 0")
    figure, axes = plt.subplots(1, len(PANELS), figsize=(4.2 * len(PANELS), 3.4), constrained_layout=True)
    for axis, (metric, name) in zip(axes, PANELS.items(), strict=True):
        for (method, divergence), metrics in sorted(data.items()):
            points = metrics.get(metric, [])
            if points:
                axis.plot(
                    *zip(*points, strict=True), marker="o", markersize=3, label=label_of(method, divergence)
                )
        for path in references:
            record = json.loads(Path(path).read_text())
            if record.get(metric) is not None:
                axis.axhline(record[metric], linestyle="--", color="grey", linewidth=1)
                axis.annotate(REFERENCE_NAMES.get(record.get("kind"), "reference"), (0.01, record[metric]),
                              xycoords=("axes fraction", "data"), fontsize=7, color="grey", va="bottom")  # fmt: skip
        if metric == "fid":
            axis.set_yscale("log")
        axis.set_xlabel("training iteration")
        axis.set_title(name)
    axes[0].legend(fontsize=7)
    if title:
        figure.suptitle(title, fontsize=9)
    with atomic_path(out) as tmp:  # the PNG states what it is and for which dataset (the report reads it)
        figure.savefig(
            tmp, dpi=120, format="png", metadata={FIGURE_KEY: CURVE_FIGURE, f"{TEXT_PREFIX}dataset": dataset}
        )
    plt.close(figure)
    return {"runs": len(run_dirs), "curves": len(data), "out": str(out)}


def add_commands(subparsers: Any) -> None:
    curve = subparsers.add_parser(
        "classifier-curve",
        help="sample quality against training iteration (each run's monitor.csv) of a classifier-scored dataset",
    )
    curve.add_argument("--config", nargs="+", required=True)
    curve.add_argument("--runs", nargs="+", required=True, type=Path, help="train-images output folders")
    curve.add_argument(
        "--references", nargs="*", default=[], type=Path, help="classifier-score reference JSONs"
    )
    curve.add_argument("--out", required=True, type=Path, help="PNG")
    curve.set_defaults(handler=_command)


def _command(args: Any) -> int:
    from febm.config import load_config

    config = load_config(args.config)
    title = f"{config['preset']} preset: newest replay-buffer chains, mean over seeds"
    print(json.dumps(make_curve_figure(args.runs, args.references, args.out, title)))
    return 0
