"""Tables 1 (CIFAR-10: IS and FID) and 2 (CelebA 32x32: FID): our runs, mean and std over seeds, beside the paper.

In the results schema (febm.results_schema), one line per (method, divergence, metric): the groups we ran,
then the paper's rows we did not run (the GAN baselines of Table 1 are cited from the paper and marked as
such), each with the paper's number beside ours. Every row states how its numbers were made:
samples per run, reference set, preprocessing, sampling protocol, checkpoint selection (final or best_is,
with the training iteration of the scored checkpoint, one value per seed where they differ), preset, and
whether the Inception weights or data were stand-ins.
"""

from __future__ import annotations

import csv
import json
import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from febm.errors import FebmError
from febm.results_schema import ResultRow, canonical_method, make_row

TABLE_DATASETS = {1: ("cifar10", "cifar10_conditional"), 2: ("celeba32", "celeba32_unconditional")}
TABLE_METRICS = {1: ("inception_score", "fid"), 2: ("fid",)}
OUR_METHODS = ("f-EBM", "contrastive_divergence")
DIVERGENCE_ORDER = ("kl", "reverse_kl", "squared_hellinger", "jensen_shannon")


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
    if method not in OUR_METHODS:
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
) -> list[ResultRow]:
    """The table in the results schema (febm.results_schema): one line per (method, divergence, metric)."""
    dataset, paper_dataset = TABLE_DATASETS[table]
    groups: dict[tuple[str, str], list[Mapping[str, Any]]] = defaultdict(list)
    for record in scores:
        if record.get("dataset") not in (dataset, None):
            raise TableError(
                f"{record['_path']} scores {record.get('dataset')!r}; Table {table} is {dataset}"
            )
        method = canonical_method(record["method"])
        # CD is KL-based; the paper lists it under kl.
        divergence = record.get("divergence") or ("kl" if method == "contrastive_divergence" else "")
        groups[(method, divergence)].append(record)
    rows = []
    paper_order = list(paper)
    for key in sorted(set(groups) | set(paper), key=lambda key: _row_order(key, paper_order)):
        method, divergence = key
        records = sorted(groups.get(key, []), key=lambda record: str(record.get("seed")))
        reported = paper.get(key, {})
        facts = _run_facts(records, preset) if records else {}
        if records:
            source = "this reproduction"
        elif method in OUR_METHODS:
            source = "paper only (not run here)"
        else:
            source = f"cited from the paper's Table {table} (not re-run)"
        for metric in TABLE_METRICS[table]:
            values = [record[metric] for record in records]
            mean, std = _mean_std(values)
            paper_value, paper_std = reported.get(metric, (None, None))
            extra = {}
            if metric == "inception_score" and records:
                extra["split_std"] = statistics.fmean(record["inception_score_std"] for record in records)
            rows.append(
                make_row(
                    f"table{table}",
                    paper_dataset,
                    method,
                    divergence,
                    metric,
                    mean=mean,
                    std=std,
                    source=source,
                    paper=paper_value,
                    paper_std=paper_std,
                    paper_source=reported.get("source"),
                    **facts,
                    **extra,
                )
            )
    return rows


def _run_facts(records: Sequence[Mapping[str, Any]], preset: str) -> dict[str, Any]:
    """How a group's numbers were made, stated once (or every distinct value where runs disagree)."""
    return {
        "n": len(records),
        "n_runs": len(records),
        "seeds": " ".join(str(record.get("seed")) for record in records),
        "n_samples": _joined(records, lambda record: record.get("n_samples")),
        "reference_set": _joined(records, lambda record: record["reference"].get("reference_set")),
        "reference_n": _joined(records, lambda record: record["reference"].get("n")),
        "preprocessing": _joined(records, lambda record: record.get("preprocessing")),
        "protocol": _joined(records, lambda record: record.get("protocol")),
        "checkpoint": _joined(records, checkpoint_label),
        "preset": _joined(records, lambda record: record.get("preset") or preset),
        "scale": _joined(records, lambda record: record.get("scale")),
        "standin_weights": any(record.get("standin_weights") for record in records),
        "standin_data": any(record.get("standin_data") for record in records),
    }
