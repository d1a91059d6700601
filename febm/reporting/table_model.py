"""The report's table records: one estimate, one (method, divergence, metric) row with ours beside the paper's,
the rendered line grouping a row's metrics, and the whole table's view as the templates read it; plus the
cell-number parser they share with ``febm/reporting/table_csv.py``."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from febm.reporting.benchmarks import format_duration
from febm.reporting.figures import Picture
from febm.reporting.table_specs import (
    DETAIL_DISPLAY,
    METHOD_DISPLAY,
    METRIC_DISPLAY,
    REFERENCE,
    REFERENCE_DISPLAY,
    TableSpec,
)
from febm.validation import DIVERGENCE_DISPLAY


def _number(text: str | None) -> float | None:
    if text is None or str(text).strip() in ("", "nan", "NaN", "None", "-", "–"):
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


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
