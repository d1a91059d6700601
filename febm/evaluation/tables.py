"""Tables 1 (CIFAR-10: IS and FID) and 2 (CelebA 32x32: FID): our runs, mean and std over seeds, beside the paper.

One row per (method, divergence) we ran, then the paper's rows we did not run (the GAN baselines of
Table 1 are cited from the paper and marked as such). Every row states how its numbers were made:
samples per run, reference set, preprocessing, sampling protocol, checkpoint selection (final or best_is,
with the training iteration of the scored checkpoint, one value per seed where they differ), preset, and
whether the Inception weights or data were stand-ins.
"""

from __future__ import annotations

import csv
import io
import json
import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from febm.errors import FebmError

TABLE_DATASETS = {1: ("cifar10", "cifar10_conditional"), 2: ("celeba32", "celeba32_unconditional")}
TABLE_METRICS = {1: ("inception_score", "fid"), 2: ("fid",)}
PAPER_METHOD_NAMES = {"febm": "f-EBM", "cd": "contrastive_divergence"}
DIVERGENCE_ORDER = ("kl", "reverse_kl", "squared_hellinger", "jensen_shannon")
COLUMNS = (
    "table",
    "dataset",
    "method",
    "divergence",
    "source",
    "n_seeds",
    "seeds",
    "inception_score_mean",
    "inception_score_std_over_seeds",
    "inception_score_split_std",
    "fid_mean",
    "fid_std_over_seeds",
    "n_samples",
    "reference_set",
    "reference_n",
    "preprocessing",
    "protocol",
    "checkpoint_selection",
    "preset",
    "scale",
    "standin_weights",
    "standin_data",
    "paper_inception_score",
    "paper_inception_score_std",
    "paper_fid",
    "paper_source",
)


class TableError(FebmError):
    """Score files or paper values that cannot be tabulated."""


def read_scores(paths: Iterable[str | Path]) -> list[dict[str, Any]]:
    scores = []
    for path in paths:
        try:
            record = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as error:
            raise TableError(f"cannot read score file {str(path)!r}: {error}") from None
        for key in ("method", "fid", "inception_score"):
            if record.get(key) is None:
                raise TableError(
                    f"score file {str(path)!r} has no {key!r}; score with `febm score ... --method M --divergence D`"
                )
        record["_path"] = str(path)
        scores.append(record)
    return scores


def read_paper_values(path: str | Path, table: int) -> dict[tuple[str, str], dict[str, Any]]:
    """{(method, divergence): {metric: (value, std), 'source': ...}} for one table of reported_results.csv."""
    values: dict[tuple[str, str], dict[str, Any]] = {}
    with open(path, newline="") as handle:
        for row in csv.DictReader(handle):
            if row["table"] != f"table{table}":
                continue
            entry = values.setdefault((row["method"], row["divergence"]), {"source": row["source"]})
            entry[row["metric"]] = (float(row["value"]), float(row["std"]) if row["std"] else None)
    return values


def _mean_std(values: Sequence[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else None


def _joined(records: Sequence[Mapping[str, Any]], getter) -> str:
    """One value if all runs agree, else all distinct values joined by ';' so disagreement shows."""
    values = []
    for record in records:
        value = getter(record)
        if str(value) not in values:
            values.append(str(value))
    return ";".join(values)


def checkpoint_label(record: Mapping[str, Any]) -> str:
    """Which checkpoint a score is of, with its training iteration: ``final (iteration 80000)``,
    ``best_is (iteration 45900)``. Score files that predate the field: from the sampled file's name."""
    selection = record.get("checkpoint_selection")
    if selection is None:
        selection = (
            "best_is" if Path(str(record.get("checkpoint") or "")).name == "model_best.pt" else "final"
        )
    iteration = record.get("checkpoint_iteration", record.get("training_iterations"))
    return selection if iteration is None else f"{selection} (iteration {iteration})"


def _row_order(key: tuple[str, str], paper_order: Sequence[tuple[str, str]]) -> tuple[int, int, str]:
    """Cited baselines first in the paper's order, then CD, then f-EBM by divergence (the paper's layout)."""
    method, divergence = key
    if method not in PAPER_METHOD_NAMES.values():
        return 0, paper_order.index(key) if key in paper_order else len(paper_order), method
    method_rank = 1 if method == "contrastive_divergence" else 2
    divergence_rank = (
        DIVERGENCE_ORDER.index(divergence) if divergence in DIVERGENCE_ORDER else len(DIVERGENCE_ORDER)
    )
    return method_rank, divergence_rank, divergence


def build_table(
    table: int,
    scores: Sequence[Mapping[str, Any]],
    paper: Mapping[tuple[str, str], Mapping[str, Any]],
    preset: str,
) -> list[dict[str, Any]]:
    dataset, paper_dataset = TABLE_DATASETS[table]
    metrics = TABLE_METRICS[table]
    groups: dict[tuple[str, str], list[Mapping[str, Any]]] = defaultdict(list)
    for record in scores:
        if record.get("dataset") not in (dataset, None):
            raise TableError(
                f"{record['_path']} scores {record.get('dataset')!r}; Table {table} is {dataset}"
            )
        method = PAPER_METHOD_NAMES.get(record["method"], record["method"])
        # CD is KL-based; the paper lists it under kl.
        divergence = record.get("divergence") or ("kl" if method == "contrastive_divergence" else "")
        groups[(method, divergence)].append(record)
    rows = []
    paper_order = list(paper)
    for key in sorted(set(groups) | set(paper), key=lambda key: _row_order(key, paper_order)):
        method, divergence = key
        records = sorted(groups.get(key, []), key=lambda record: str(record.get("seed")))
        reported = paper.get(key, {})
        row: dict[str, Any] = dict.fromkeys(COLUMNS, "")
        row.update(table=table, dataset=paper_dataset, method=method, divergence=divergence)
        if records:
            row["source"] = "this reproduction"
            row["n_seeds"] = len(records)
            row["seeds"] = ";".join(str(record.get("seed")) for record in records)
            if "inception_score" in metrics:
                mean, std = _mean_std([record["inception_score"] for record in records])
                row.update(inception_score_mean=mean, inception_score_std_over_seeds=std)
                row["inception_score_split_std"] = statistics.fmean(
                    record["inception_score_std"] for record in records
                )
            mean, std = _mean_std([record["fid"] for record in records])
            row.update(fid_mean=mean, fid_std_over_seeds=std)
            row["n_samples"] = _joined(records, lambda record: record.get("n_samples"))
            row["reference_set"] = _joined(records, lambda record: record["reference"].get("reference_set"))
            row["reference_n"] = _joined(records, lambda record: record["reference"].get("n"))
            row["preprocessing"] = _joined(records, lambda record: record.get("preprocessing"))
            row["protocol"] = _joined(records, lambda record: record.get("protocol"))
            row["checkpoint_selection"] = _joined(records, checkpoint_label)
            row["preset"] = _joined(records, lambda record: record.get("preset") or preset)
            row["scale"] = _joined(records, lambda record: record.get("scale"))
            row["standin_weights"] = any(record.get("standin_weights") for record in records)
            row["standin_data"] = any(record.get("standin_data") for record in records)
        elif method in PAPER_METHOD_NAMES.values():
            row["source"] = "paper only (not run here)"
        else:
            row["source"] = f"cited from the paper's Table {table} (not re-run)"
        if "inception_score" in reported and "inception_score" in metrics:
            row["paper_inception_score"], row["paper_inception_score_std"] = reported["inception_score"]
        if "fid" in reported:
            row["paper_fid"] = reported["fid"][0]
        row["paper_source"] = reported.get("source", "")
        rows.append(row)
    return rows


def table_csv(rows: Sequence[Mapping[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow(
            {key: (f"{value:.6g}" if isinstance(value, float) else value) for key, value in row.items()}
        )
    return buffer.getvalue()
