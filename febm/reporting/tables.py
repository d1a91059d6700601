"""The report's tables: the paper's rows (febm/data/reported_results.csv) with our numbers beside them.

The paper's rows are the skeleton, so every table shows the published numbers even where a preset
ran only part of the grid; our rows that the paper does not have are appended. A table the paper does
not have (Fashion-MNIST) shows our rows alone, with its reference rows (what perfect samples and what
noise score) after them. Our table CSVs may be long (``method, divergence, metric, mean, std, n``) or
wide (``method, divergence, fid_mean, fid_std, n``); both are read into one row per (method,
divergence, metric).
"""

from __future__ import annotations

import csv
import math
import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from febm.reporting.benchmarks import format_duration
from febm.reporting.errors import ReportInputError
from febm.reporting.figures import Picture
from febm.reporting.labels import labels_of_record, merge_labels
from febm.reporting.table_specs import (
    COUNT_COLUMNS,
    DETAIL_DISPLAY,
    MEAN_COLUMNS,
    METHOD_DISPLAY,
    METHOD_NAMES,
    METRIC_DISPLAY,
    REFERENCE,
    REFERENCE_DISPLAY,
    STD_COLUMNS,
    SUMMARY_DISPLAY,
    TOY_BASELINE_ROWS,
    TOY_DETAIL_COLUMNS,
    TOY_METRICS,
    TOY_STATIONARY,
    TRUE_TEXT,
    WIDE_MEAN,
    WIDE_STD_SUFFIXES,
    TableSpec,
)
from febm.validation import DIVERGENCE_DISPLAY


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
    details: dict[str, str] = field(default_factory=dict)  # the CSV's per-row facts (DETAIL_DISPLAY)

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.method, self.divergence, self.metric)

    @property
    def is_reference(self) -> bool:
        return self.method == REFERENCE

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
        if self.is_reference:
            return REFERENCE_DISPLAY.get(self.divergence, self.divergence)
        if self.divergence.startswith("alpha_"):
            return f"α = {self.divergence.removeprefix('alpha_')}"
        return DIVERGENCE_DISPLAY.get(self.divergence, self.divergence or "–")

    @property
    def metric_text(self) -> str:
        return METRIC_DISPLAY.get(self.metric, self.metric)


def detail_text(column: str, raw: str) -> str:
    """A per-row fact as the report shows it ("–" where the CSV leaves it empty)."""
    raw = (raw or "").strip()
    number = _number(raw)
    if column == "train_wall_seconds" and number is not None:
        return format_duration(number)
    if column == "n_samples" and number is not None:
        return f"{number:,.0f}"
    return ", ".join(raw.split()) or "–"  # several values (e.g. iterations differing between seeds)


@dataclass
class GroupedRow:
    """One line of a rendered table: a method and divergence, with one TableRow per metric."""

    method_text: str
    divergence_text: str
    cells: dict[str, TableRow]
    is_reference: bool = False
    details: dict[str, str] = field(default_factory=dict)

    @property
    def has_ours(self) -> bool:
        return any(cell.ours is not None for cell in self.cells.values())

    def detail(self, column: str) -> str:
        return detail_text(column, self.details.get(column, ""))


@dataclass
class TableView:
    spec: TableSpec
    status: str  # "ok" or "not run"
    reason: str = ""
    rows: list[TableRow] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    raw_header: list[str] = field(default_factory=list)
    raw_rows: list[list[str]] = field(default_factory=list)
    unparsed: bool = False
    note: str = ""
    summary: list[tuple[str, str, list[float]]] = field(default_factory=list)  # (column, label, values)
    # the quality-vs-iteration figure shown below the table (spec.curve), and the line shown instead
    # when the study ran without one
    curve: Picture | None = None
    curve_missing: str = ""

    @property
    def title(self) -> str:
        return self.spec.title

    @property
    def anchor(self) -> str:
        return self.spec.anchor

    @property
    def has_paper(self) -> bool:
        return self.spec.paper_table is not None

    @property
    def metrics(self) -> list[str]:
        """Metrics in first-seen order (the paper's order for its own metrics)."""
        return list(dict.fromkeys(row.metric for row in self.rows))

    @property
    def detail_columns(self) -> list[str]:
        return [column for column in self.spec.detail_columns if column in self.raw_header]

    @property
    def column_count(self) -> int:
        return 2 + len(self.metrics) * (3 if self.has_paper else 1) + len(self.detail_columns)

    @property
    def grouped_rows(self) -> list[GroupedRow]:
        groups: dict[tuple[str, str], GroupedRow] = {}
        for row in self.rows:
            key = (row.method, row.divergence)
            if key not in groups:
                groups[key] = GroupedRow(
                    row.method_text, row.divergence_text, {}, row.is_reference, dict(row.details)
                )
            groups[key].cells[row.metric] = row
        return list(groups.values())

    @property
    def method_groups(self) -> list[GroupedRow]:
        return [group for group in self.grouped_rows if not group.is_reference]

    @property
    def reference_groups(self) -> list[GroupedRow]:
        return [group for group in self.grouped_rows if group.is_reference]

    def metric_text(self, metric: str) -> str:
        return METRIC_DISPLAY.get(metric, metric)

    def detail_heading(self, column: str) -> str:
        return DETAIL_DISPLAY.get(column, column)


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
        # the mean is over the converged seeds; failed runs show in the "Seeds converged" column
        count = _count(record.get("n_converged", record.get("n_seeds")))
        details = {column: record.get(column) or "" for column in TOY_DETAIL_COLUMNS if column in record}
        if name in TOY_BASELINE_ROWS:
            method, divergence = TOY_BASELINE_ROWS[name], "kl"
        else:
            method, divergence = "f-EBM", name
            for metric in TOY_METRICS:
                optimum = _number(record.get(f"{metric}_optimal"))
                if optimum is not None:
                    rows.append(TableRow("optimum", name, metric, Estimate(optimum), labels=labels))
            if (record.get("stationary_is_optimum") or "").strip().lower() == "false":
                for metric in TOY_METRICS:  # a local minimum the runs' start leads to: its own line
                    value = _number(record.get(f"{metric}_stationary"))
                    if value is not None:
                        rows.append(TableRow(TOY_STATIONARY, name, metric, Estimate(value), labels=labels))
        for metric in TOY_METRICS:
            mean = _number(record.get(f"{metric}_febm"))
            if mean is None and count == 0:  # every seed failed: still a line, marked 0/n
                mean = math.nan
            if mean is not None:
                estimate = Estimate(mean, _number(record.get(f"{metric}_febm_std")), count)
                rows.append(TableRow(method, divergence, metric, estimate, labels=labels, details=details))
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
        detail_columns = [name for name in DETAIL_DISPLAY if name in columns]
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
                    details={name: record.get(name) or "" for name in detail_columns},
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


def summary_values(records: list[dict[str, str]], column: str) -> list[float]:
    """The distinct values of a once-per-table column (several only if the runs disagree)."""
    values = [_number(record.get(column)) for record in records]
    return list(dict.fromkeys(value for value in values if value is not None))


def in_order_of(rows: list[TableRow], order: list[TableRow]) -> list[TableRow]:
    """Our rows in the (method, divergence) order of ``order``, unknown ones after, references last."""
    rank = {
        key: index for index, key in enumerate(dict.fromkeys((row.method, row.divergence) for row in order))
    }
    positions = {row.key: index for index, row in enumerate(rows)}
    return sorted(
        rows,
        key=lambda row: (
            row.is_reference,
            rank.get((row.method, row.divergence), len(rank)),
            positions[row.key],
        ),
    )


def build_table(
    spec: TableSpec,
    table_csv: str | Path | None,
    paper_csv: str | Path,
    labels: list[str],
    not_run_reason: str,
    note_facts: Mapping[str, object] | None = None,
) -> TableView:
    """Join our table (if it was produced) with the paper's rows, or show ours alone if the paper has none."""
    skeleton = paper_rows(paper_csv, spec.paper_table) if spec.paper_table is not None else []
    # safe_substitute: a fact the renderer did not pass stays visible as $name rather than failing
    note = string.Template(spec.note).safe_substitute(note_facts or {})
    if table_csv is None:
        return TableView(spec, "not run", reason=not_run_reason, rows=skeleton, note=note)
    columns, records = read_csv(table_csv)
    view = TableView(
        spec,
        "ok",
        labels=list(labels),
        raw_header=columns,
        raw_rows=[[record.get(name, "") or "" for name in columns] for record in records],
        note=note,
        summary=[
            (column, SUMMARY_DISPLAY.get(column, column), values)
            for column in spec.summary_columns
            if (values := summary_values(records, column))
        ],
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
            row.ours, row.labels, row.details = match.ours, match.labels, match.details
    known = {row.key for row in skeleton}
    extra = [row for row in ours if row.key not in known and row.ours is not None]
    if spec.row_order_of is not None:
        extra = in_order_of(extra, paper_rows(paper_csv, spec.row_order_of))
    view.rows = skeleton + extra
    for row in view.rows:
        if row.ours is not None:
            row.labels = merge_labels(view.labels, row.labels)
    return view
