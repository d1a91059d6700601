"""The report's tables: the paper's rows (febm/data/reported_results.csv) with our numbers beside them.

The paper's rows are the skeleton, so every table shows the published numbers even where a preset
ran only part of the grid; our rows that the paper does not have are appended. A table the paper does
not have (Fashion-MNIST) shows our rows alone, with its reference rows (what perfect samples and what
noise score) after them. Our table CSVs are in the one results schema (febm/results_schema.py), one
line per (method, divergence, metric); a CSV in another layout is an error, not a guess.

This module joins them (:func:`build_table`); the records are in ``febm/reporting/table_model.py``, the CSV
reading in ``febm/reporting/table_csv.py``. Every public name of the three is importable from here.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from pathlib import Path

from febm.reporting.labels import merge_labels
from febm.reporting.table_csv import our_rows, paper_rows, raw_view, read_ours, summary_values
from febm.reporting.table_model import Estimate, GroupedRow, TableRow, TableView, detail_text
from febm.reporting.table_specs import SUMMARY_DISPLAY, TableSpec

__all__ = [
    "Estimate",
    "GroupedRow",
    "TableRow",
    "TableView",
    "build_table",
    "detail_text",
    "in_order_of",
    "our_rows",
    "paper_rows",
    "read_ours",
    "summary_values",
]


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
    results = read_ours(table_csv)
    raw_header, raw_rows = raw_view(table_csv)
    view = TableView(
        spec,
        "ok",
        labels=list(labels),
        raw_header=raw_header,
        raw_rows=raw_rows,
        note=note,
        summary=[
            (column, SUMMARY_DISPLAY.get(column, column), values)
            for column in spec.summary_columns
            if (values := summary_values(results, column))
        ],
    )
    ours = our_rows(results)
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
