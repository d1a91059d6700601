"""The report's tables: the paper's rows (febm/data/reported_results.csv) with our numbers beside them.

The paper's rows are the skeleton, so every table shows the published numbers even where a preset
ran only part of the grid; our rows that the paper does not have are appended. Our table CSVs may be
long (``method, divergence, metric, mean, std, n``) or wide (``method, divergence, fid_mean,
fid_std, n``); both are read into one row per (method, divergence, metric).
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from febm.reporting.errors import ReportInputError
from febm.reporting.labels import labels_of_record, merge_labels
from febm.validation import DIVERGENCE_DISPLAY

TABLE_TITLES = {
    1: "Table 1. CIFAR-10 class-conditional generation: Inception Score and FID",
    2: "Table 2. CelebA 32×32 unconditional generation: FID",
    5: "Table 5. 1-D Gaussian mixture: learned (μ, σ) against the exact f-divergence optimum",
}
TABLE_NOTES = {
    1: "The paper's ± on the Inception Score is the standard deviation over 10 splits of 5,000 samples of "
    "one run; ours is over seeds (the split standard deviation is in the CSV below).",
    2: "FID against the preprocessed CelebA images of this reproduction; the paper does not state its "
    "CelebA preprocessing, so differences of a few points are expected even at paper scale.",
    5: "Exact optimum: ours is the quadrature minimiser of the f-divergence; the paper's comes from direct "
    "numerical minimisation in the original code. The baselines are fitted on KL.",
}
METHOD_NAMES = {
    "febm": "f-EBM",
    "f-ebm": "f-EBM",
    "cd": "contrastive_divergence",
    "contrastive divergence": "contrastive_divergence",
    "maximum_likelihood": "mle",
}
METHOD_DISPLAY = {
    "f-EBM": "f-EBM",
    "contrastive_divergence": "Contrastive divergence",
    "optimum": "Exact optimum",
    "mle": "Maximum likelihood",
}
METRIC_DISPLAY = {"inception_score": "Inception Score", "fid": "FID", "mu": "μ", "sigma": "σ"}
MEAN_COLUMNS = ("mean", "ours_mean", "value", "ours")
STD_COLUMNS = ("std_over_seeds", "std", "ours_std")
COUNT_COLUMNS = ("n_seeds", "n", "count")
WIDE_MEAN = re.compile(r"^(?:ours_)?(?P<metric>[a-z_]+?)_mean$")
WIDE_STD_SUFFIXES = ("_std_over_seeds", "_std")
TRUE_TEXT = ("true", "1", "yes")
TOY_METRICS = ("mu", "sigma")
TOY_BASELINE_ROWS = {"contrastive_divergence": "contrastive_divergence", "maximum_likelihood": "mle"}


@dataclass
class Estimate:
    mean: float
    std: float | None = None
    n: int | None = None


@dataclass
class TableRow:
    method: str
    divergence: str
    metric: str
    ours: Estimate | None = None
    paper: float | None = None
    paper_std: float | None = None
    labels: list[str] = field(default_factory=list)

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.method, self.divergence, self.metric)

    @property
    def difference(self) -> float | None:
        if self.ours is None or self.paper is None:
            return None
        return self.ours.mean - self.paper

    @property
    def method_text(self) -> str:
        return METHOD_DISPLAY.get(self.method, self.method)

    @property
    def divergence_text(self) -> str:
        if self.divergence.startswith("alpha_"):
            return f"α = {self.divergence.removeprefix('alpha_')}"
        return DIVERGENCE_DISPLAY.get(self.divergence, self.divergence or "–")

    @property
    def metric_text(self) -> str:
        return METRIC_DISPLAY.get(self.metric, self.metric)


@dataclass
class GroupedRow:
    """One line of a rendered table: a method and divergence, with one TableRow per metric."""

    method_text: str
    divergence_text: str
    cells: dict[str, TableRow]

    @property
    def has_ours(self) -> bool:
        return any(cell.ours is not None for cell in self.cells.values())


@dataclass
class TableView:
    number: int
    status: str  # "ok" or "not run"
    reason: str = ""
    rows: list[TableRow] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    raw_header: list[str] = field(default_factory=list)
    raw_rows: list[list[str]] = field(default_factory=list)
    unparsed: bool = False

    @property
    def title(self) -> str:
        return TABLE_TITLES[self.number]

    @property
    def metrics(self) -> list[str]:
        """Metrics in first-seen order (the paper's order for its own metrics)."""
        return list(dict.fromkeys(row.metric for row in self.rows))

    @property
    def grouped_rows(self) -> list[GroupedRow]:
        groups: dict[tuple[str, str], GroupedRow] = {}
        for row in self.rows:
            key = (row.method, row.divergence)
            if key not in groups:
                groups[key] = GroupedRow(row.method_text, row.divergence_text, {})
            groups[key].cells[row.metric] = row
        return list(groups.values())

    def metric_text(self, metric: str) -> str:
        return METRIC_DISPLAY.get(metric, metric)

    @property
    def anchor(self) -> str:
        return f"table{self.number}"

    @property
    def note(self) -> str:
        return TABLE_NOTES.get(self.number, "")


def canonical_method(name: str) -> str:
    name = name.strip()
    return METHOD_NAMES.get(name.lower(), METHOD_NAMES.get(name, name))


def _number(text: str | None) -> float | None:
    if text is None or str(text).strip() in ("", "nan", "NaN", "None", "-", "–"):
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _count(text: str | None) -> int | None:
    value = _number(text)
    return None if value is None else int(value)


def read_csv(path: str | Path) -> tuple[list[str], list[dict[str, str]]]:
    try:
        with open(path, newline="") as handle:
            reader = csv.DictReader(handle)
            rows = list(reader)
            return list(reader.fieldnames or []), rows
    except FileNotFoundError:
        raise ReportInputError(f"table file {str(path)!r} does not exist") from None


def paper_rows(paper_csv: str | Path, number: int) -> list[TableRow]:
    """The published numbers of one table, in the paper's order."""
    _, records = read_csv(paper_csv)
    rows = []
    for record in records:
        if record.get("table") != f"table{number}":
            continue
        rows.append(
            TableRow(
                method=canonical_method(record["method"]),
                divergence=record.get("divergence", "") or "",
                metric=record["metric"],
                paper=_number(record.get("value")),
                paper_std=_number(record.get("std")),
            )
        )
    return rows


def _first(columns: list[str], candidates: tuple[str, ...]) -> str | None:
    return next((name for name in candidates if name in columns), None)


def row_labels(record: Mapping[str, str]) -> list[str]:
    """Scale labels a table row states about itself (preset, scale, stand-in columns)."""
    flags = {
        name: str(record.get(name, "")).strip().lower() in TRUE_TEXT
        for name in ("standin_data", "standin_weights")
    }
    return labels_of_record(
        {"preset": record.get("preset") or None, "scale": record.get("scale") or None, **flags}
    )


def _wide_std(record: Mapping[str, str], prefix: str, metric: str) -> float | None:
    for suffix in WIDE_STD_SUFFIXES:
        value = _number(record.get(f"{prefix}{metric}{suffix}"))
        if value is not None:
            return value
    return None


def toy_rows(records: list[dict[str, str]]) -> list[TableRow]:
    """Table 5 as `febm toy-table` writes it: one line per divergence (exact optimum and f-EBM) or
    baseline (contrastive_divergence, maximum_likelihood: learned values in the *_febm columns)."""
    rows = []
    for record in records:
        name = record["divergence"]
        labels = row_labels(record)
        count = _count(record.get("n_seeds"))
        if name in TOY_BASELINE_ROWS:
            method, divergence = TOY_BASELINE_ROWS[name], "kl"
        else:
            method, divergence = "f-EBM", name
            for metric in TOY_METRICS:
                optimum = _number(record.get(f"{metric}_optimal"))
                if optimum is not None:
                    rows.append(TableRow("optimum", name, metric, Estimate(optimum), labels=labels))
        for metric in TOY_METRICS:
            mean = _number(record.get(f"{metric}_febm"))
            if mean is not None:
                estimate = Estimate(mean, _number(record.get(f"{metric}_febm_std")), count)
                rows.append(TableRow(method, divergence, metric, estimate, labels=labels))
    return rows


def our_rows(columns: list[str], records: list[dict[str, str]]) -> list[TableRow] | None:
    """Our numbers as one row per (method, divergence, metric); None if the layout is not recognised."""
    if "method" not in columns:
        if {"divergence", "mu_febm", "sigma_febm"} <= set(columns):
            return toy_rows(records)
        return None
    count_column = _first(columns, COUNT_COLUMNS)
    rows = []
    if "metric" in columns:
        mean_column = _first(columns, MEAN_COLUMNS)
        if mean_column is None:
            return None
        std_column = _first(columns, STD_COLUMNS)
        for record in records:
            mean = _number(record.get(mean_column))
            rows.append(
                TableRow(
                    method=canonical_method(record["method"]),
                    divergence=record.get("divergence", "") or "",
                    metric=record["metric"],
                    ours=None
                    if mean is None
                    else Estimate(
                        mean,
                        _number(record.get(std_column)) if std_column else None,
                        _count(record.get(count_column)) if count_column else None,
                    ),
                    labels=row_labels(record),
                )
            )
        return rows
    wide_metrics = [match["metric"] for name in columns if (match := WIDE_MEAN.match(name))]
    if not wide_metrics:
        return None
    for record in records:
        for metric in wide_metrics:
            prefix = "ours_" if f"ours_{metric}_mean" in columns else ""
            mean = _number(record.get(f"{prefix}{metric}_mean"))
            std = _wide_std(record, prefix, metric)
            count = _count(record.get(f"{metric}_n", record.get(count_column) if count_column else None))
            rows.append(
                TableRow(
                    method=canonical_method(record["method"]),
                    divergence=record.get("divergence", "") or "",
                    metric=metric,
                    ours=None if mean is None else Estimate(mean, std, count),
                    labels=row_labels(record),
                )
            )
    return rows


def build_table(
    number: int, table_csv: str | Path | None, paper_csv: str | Path, labels: list[str], not_run_reason: str
) -> TableView:
    """Join our table (if it was produced) with the paper's rows."""
    skeleton = paper_rows(paper_csv, number)
    if table_csv is None:
        return TableView(number, "not run", reason=not_run_reason, rows=skeleton)
    columns, records = read_csv(table_csv)
    view = TableView(
        number,
        "ok",
        labels=list(labels),
        raw_header=columns,
        raw_rows=[[record.get(name, "") or "" for name in columns] for record in records],
    )
    ours = our_rows(columns, records)
    if ours is None:
        view.unparsed = True
        view.rows = skeleton
        return view
    by_key: Mapping[tuple[str, str, str], TableRow] = {row.key: row for row in ours if row.ours is not None}
    for row in skeleton:
        match = by_key.get(row.key)
        if match is not None:
            row.ours, row.labels = match.ours, match.labels
    known = {row.key for row in skeleton}
    view.rows = skeleton + [row for row in ours if row.key not in known and row.ours is not None]
    for row in view.rows:
        if row.ours is not None:
            row.labels = merge_labels(view.labels, row.labels)
    return view
