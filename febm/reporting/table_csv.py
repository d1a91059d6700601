"""Reading the report's tables: the paper's published rows (``febm/data/reported_results.csv``) and ours,
which every producer writes in the one results schema (``febm/results_schema.py``); the records are in
``febm/reporting/table_model.py``."""

from __future__ import annotations

import csv
import math
from pathlib import Path

from febm.reporting.errors import ReportInputError
from febm.reporting.labels import labels_of_record
from febm.reporting.table_model import Estimate, TableRow, _number
from febm.reporting.table_specs import TOY_STATIONARY
from febm.results_schema import ResultRow, ResultsSchemaError, canonical_method, read_results


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


def read_ours(path: str | Path) -> list[ResultRow]:
    """Our table's rows; a file not in the results schema is a report input error, not a guess."""
    try:
        return read_results(path)
    except ResultsSchemaError as error:
        raise ReportInputError(str(error)) from None


def table_of_file(path: str | Path) -> str:
    """Which table a CSV holds, as its rows state it."""
    names = {row.table for row in read_ours(path)}
    if len(names) != 1:
        raise ReportInputError(
            f"table file {str(path)!r} holds rows of {len(names)} tables ({', '.join(sorted(names)) or 'none'}); "
            "the report takes one table per file"
        )
    return names.pop()


def is_shown(row: ResultRow) -> bool:
    """Rows the report shows as ours: estimates, and groups whose every run failed (shown as 0 of n).
    A stationary point that is the global optimum is not repeated; the paper's rows come from the paper."""
    if row.method == TOY_STATIONARY and row.details.get("same_as_optimum") == "true":
        return False
    return row.mean is not None or (row.n == 0 and bool(row.n_runs))


def our_rows(rows: list[ResultRow]) -> list[TableRow]:
    """Our numbers as the report's rows, one per (method, divergence, metric), labelled by their scale."""
    return [
        TableRow(
            method=row.method,
            divergence=row.divergence,
            metric=row.metric,
            ours=Estimate(math.nan if row.mean is None else row.mean, row.std, row.n),
            labels=labels_of_record(row.labels_record),
            details=dict(row.details),
        )
        for row in rows
        if is_shown(row)
    ]


def summary_values(rows: list[ResultRow], column: str) -> list[float]:
    """The distinct values of a once-per-table fact (several only if the runs disagree)."""
    values = [_number(row.details.get(column)) for row in rows]
    return list(dict.fromkeys(value for value in values if value is not None))


def raw_view(path: str | Path) -> tuple[list[str], list[list[str]]]:
    """The CSV as written, without the columns this table leaves empty on every line."""
    header, records = read_csv(path)
    kept = [name for name in header if any((record.get(name) or "").strip() for record in records)]
    return kept, [[record.get(name, "") or "" for name in kept] for record in records]
