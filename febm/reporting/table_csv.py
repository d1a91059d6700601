"""Reading the report's table CSVs into rows: the paper's published rows (``febm/data/reported_results.csv``),
the 1-D study's table and our image tables, long (``method, divergence, metric, mean, std, n``) or wide
(``method, divergence, fid_mean, fid_std, n``); the records are in ``febm/reporting/table_model.py``."""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping
from pathlib import Path

from febm.reporting.errors import ReportInputError
from febm.reporting.labels import labels_of_record
from febm.reporting.table_model import Estimate, TableRow, _number
from febm.reporting.table_specs import (
    COUNT_COLUMNS,
    DETAIL_DISPLAY,
    MEAN_COLUMNS,
    METHOD_NAMES,
    STD_COLUMNS,
    TOY_BASELINE_ROWS,
    TOY_DETAIL_COLUMNS,
    TOY_METRICS,
    TOY_STATIONARY,
    TRUE_TEXT,
    WIDE_MEAN,
    WIDE_STD_SUFFIXES,
)


def canonical_method(name: str) -> str:
    name = name.strip()
    return METHOD_NAMES.get(name.lower(), METHOD_NAMES.get(name, name))


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
