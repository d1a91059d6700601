"""The one results schema: every table the pipeline writes (Table 5, Tables 1-2, Fashion-MNIST) is a CSV
of :class:`ResultRow`, and the report reads nothing else.

Long format, one line per (method, divergence, metric), the layout of the paper's own
``febm/data/reported_results.csv`` with our estimate in place of its ``value``:

- identity: ``table`` (table5, table1, table2, fashion_mnist), ``dataset``, ``method`` (canonical:
  ``f-EBM``, ``contrastive_divergence``, ``mle``; ``optimum`` and ``stationary`` for Table 5's exact
  targets; ``reference`` for a classifier table's reference rows; a cited baseline's own name),
  ``divergence``, ``metric``;
- the estimate: ``mean``, ``std`` (over seeds), ``n`` (runs averaged), ``n_runs`` (runs started;
  more than ``n`` where some failed), ``seeds``;
- provenance: ``source``, ``preset``, ``scale``, ``standin_data``, ``standin_weights``;
- per-row facts (:data:`DETAIL_COLUMNS`), empty where a table has no such fact, and the paper's number
  for the same row (``paper``, ``paper_std``, ``paper_source``).

A row without our estimate (``mean`` empty) is one the paper has and we did not run, or a group whose
every run failed (``n`` 0).
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from febm.errors import FebmError
from febm.io import write_text_atomic

IDENTITY_COLUMNS = ("table", "dataset", "method", "divergence", "metric")
ESTIMATE_COLUMNS = ("mean", "std", "n", "n_runs", "seeds")
PROVENANCE_COLUMNS = ("source", "preset", "scale", "standin_data", "standin_weights")
DETAIL_COLUMNS = (
    "n_samples",  # images scored per run
    "iterations",  # training iterations (distinct values joined by spaces)
    "train_wall_seconds",  # mean training wall time per run
    "checkpoint",  # which checkpoint was scored: final or best_is, with its iteration
    "protocol",  # the sampling protocol of the scored images
    "reference_set",  # FID's reference images, and how many
    "reference_n",
    "preprocessing",  # Inception preprocessing
    "split_std",  # Inception Score: mean over runs of the std over splits
    "classifier_test_accuracy",  # the scoring classifier's test-split accuracy
    "converged",  # Table 5: runs finished / runs started
    "ended_near",  # Table 5: optimum, stationary or optimum=stationary per converged run
    "distance_max",  # Table 5: the largest such distance, max(|dmu|, |dsigma|)
    "per_seed",
    "failures",  # the failed runs' messages
    "same_as_optimum",  # Table 5's stationary rows: true where descent reaches the global optimum
    "objective_value",  # Table 5's optimum rows: D_f at the optimum
    "paper",
    "paper_std",
    "paper_source",
)
COLUMNS = IDENTITY_COLUMNS + ESTIMATE_COLUMNS + PROVENANCE_COLUMNS + DETAIL_COLUMNS

# Run-file method names (febm, cd, mle, dual) -> the tables' canonical ones (the paper's spelling;
# dual_form: Theorem 1's estimator, Section 3.1.2).
CANONICAL_METHODS = {"febm": "f-EBM", "cd": "contrastive_divergence", "mle": "mle", "dual": "dual_form"}
REFERENCE = "reference"
TRUE_TEXT = ("true", "1", "yes")


class ResultsSchemaError(FebmError):
    """A table file that is not in the results schema."""


def canonical_method(name: str) -> str:
    return CANONICAL_METHODS.get(name, name)


@dataclass
class ResultRow:
    table: str
    dataset: str
    method: str
    divergence: str
    metric: str
    mean: float | None = None
    std: float | None = None
    n: int | None = None
    n_runs: int | None = None
    seeds: str = ""
    source: str = ""
    preset: str = ""
    scale: str = ""
    standin_data: bool = False
    standin_weights: bool = False
    details: dict[str, str] = field(default_factory=dict)  # DETAIL_COLUMNS, as text

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.method, self.divergence, self.metric)

    @property
    def labels_record(self) -> dict[str, Any]:
        """The facts the report's scale labels are made from."""
        return {
            "preset": self.preset or None,
            "scale": self.scale or None,
            "standin_data": self.standin_data,
            "standin_weights": self.standin_weights,
        }


def detail_text(value: Any) -> str:
    """A value as the CSV holds it: floats to 10 significant digits, None as empty."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:.10g}" if math.isfinite(value) else ""
    return str(value)


def make_row(table: str, dataset: str, method: str, divergence: str, metric: str, **values: Any) -> ResultRow:
    """A row from keyword values: the estimate and provenance fields by name, anything else a detail."""
    unknown = set(values) - set(COLUMNS)
    if unknown:
        raise ValueError(f"not results-schema columns: {sorted(unknown)}")
    details = {name: detail_text(values.pop(name)) for name in DETAIL_COLUMNS if name in values}
    for name in ("preset", "scale", "source", "seeds"):
        values[name] = "" if values.get(name) is None else str(values[name])
    for name in ("standin_data", "standin_weights"):
        values[name] = bool(values.get(name))
    return ResultRow(table, dataset, method, divergence, metric, details=details, **values)


def results_csv(rows: Iterable[ResultRow]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS)
    for row in rows:
        fixed = [getattr(row, name) for name in IDENTITY_COLUMNS + ESTIMATE_COLUMNS + PROVENANCE_COLUMNS]
        writer.writerow(
            [detail_text(value) for value in fixed] + [row.details.get(n, "") for n in DETAIL_COLUMNS]
        )
    return buffer.getvalue()


def write_results(rows: Iterable[ResultRow], out: str | Path) -> None:
    write_text_atomic(out, results_csv(rows))


def _number(text: str) -> float | None:
    if not text.strip():
        return None
    value = float(text)
    return value if math.isfinite(value) else None


def _row_of(record: Mapping[str, str], where: str) -> ResultRow:
    try:
        mean, std = _number(record["mean"]), _number(record["std"])
        n = int(record["n"]) if record["n"].strip() else None
        n_runs = int(record["n_runs"]) if record["n_runs"].strip() else None
    except ValueError as error:
        raise ResultsSchemaError(f"{where}: not a number ({error})") from None
    return ResultRow(
        *(record[name] for name in IDENTITY_COLUMNS),
        mean=mean,
        std=std,
        n=n,
        n_runs=n_runs,
        seeds=record["seeds"],
        source=record["source"],
        preset=record["preset"],
        scale=record["scale"],
        standin_data=record["standin_data"].strip().lower() in TRUE_TEXT,
        standin_weights=record["standin_weights"].strip().lower() in TRUE_TEXT,
        details={name: record[name] for name in DETAIL_COLUMNS if record[name]},
    )


def read_results(path: str | Path) -> list[ResultRow]:
    """A table file's rows; a file in another layout is an error naming the columns it lacks."""
    try:
        with open(path, newline="") as handle:
            reader = csv.DictReader(handle)
            records = list(reader)
            header = list(reader.fieldnames or [])
    except FileNotFoundError:
        raise ResultsSchemaError(f"table file {str(path)!r} does not exist") from None
    except (UnicodeDecodeError, csv.Error) as error:
        raise ResultsSchemaError(f"table file {str(path)!r} is not a CSV ({error})") from None
    missing = [name for name in COLUMNS if name not in header]
    if missing:
        raise ResultsSchemaError(
            f"table file {str(path)!r} is not in febm's results schema (lacks {', '.join(missing[:4])}"
            f"{', ...' if len(missing) > 4 else ''}); rebuild it with the febm that renders the report"
        )
    return [_row_of(record, f"{path}, line {index + 2}") for index, record in enumerate(records)]
