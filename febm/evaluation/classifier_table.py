"""The table of a classifier-scored dataset (Fashion-MNIST): per method and divergence, mean and std over
seeds of each metric, beside the two reference rows (train split = perfect samples, uniform noise =
nothing learnt).

In the results schema (febm.results_schema), one line per (method, divergence, metric); the table is named
after the dataset. Per-row facts: images scored, training iterations and wall time, the scoring
classifier's test accuracy, the sampling protocol and which checkpoint was scored (final or best_is, with
its training iteration per seed).
"""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from febm.errors import FebmError
from febm.evaluation.tables import checkpoint_label
from febm.results_schema import REFERENCE, ResultRow, canonical_method, make_row, write_results

METRICS = ("conditional_accuracy", "fid", "inception_score")
REFERENCE_ROWS = {"reference_train": "train split", "reference_noise": "uniform noise"}


class ClassifierTableError(FebmError):
    """Score or run files that cannot be tabulated."""


def _read_json(path: str | Path, what: str) -> dict[str, Any]:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ClassifierTableError(f"{what} {str(path)!r} does not exist") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ClassifierTableError(f"{what} {str(path)!r} is not JSON ({error}); rerun its step") from None


def _run_key(record: Mapping[str, Any]) -> tuple[str, str, int]:
    return (str(record.get("method")), str(record.get("divergence")), int(record.get("seed", -1)))


def _stats(values: list[float]) -> tuple[float, float | None]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else None


def build_rows(scores: Iterable[Mapping[str, Any]], runs: Iterable[Mapping[str, Any]]) -> list[ResultRow]:
    """Group score records by (method, divergence); references become their own rows."""
    run_of = {_run_key(run): run for run in runs}
    groups: dict[tuple[str, str], list[Mapping[str, Any]]] = defaultdict(list)
    references = []
    for record in scores:
        if record.get("kind") in REFERENCE_ROWS:
            references.append(record)
        else:
            groups[(str(record.get("method")), str(record.get("divergence")))].append(record)
    rows = []
    for (method, divergence), records in sorted(groups.items()):
        trained = [run_of.get(_run_key(record), {}) for record in records]
        seeds = sorted(int(record.get("seed", -1)) for record in records)
        iterations = sorted({run.get("iterations") for run in trained if run.get("iterations") is not None})
        walls = [float(run["wall_seconds"]) for run in trained if run.get("wall_seconds") is not None]
        for metric in METRICS:
            mean, std = _stats([float(record[metric]) for record in records])
            rows.append(
                _row(
                    records[0],
                    canonical_method(method),
                    divergence,
                    metric,
                    mean=mean,
                    std=std,
                    n=len(records),
                    n_runs=len(records),
                    seeds=" ".join(map(str, seeds)),
                    source="this reproduction",
                    iterations=" ".join(map(str, iterations)),
                    train_wall_seconds=statistics.fmean(walls) if walls else None,
                    checkpoint=_distinct(checkpoint_label(record) for record in records),
                    protocol=_distinct(str(record.get("protocol")) for record in records),
                )
            )
    for record in references:
        source = f"reference: {REFERENCE_ROWS[record['kind']]}, scored as the runs are"
        for metric in METRICS:
            rows.append(
                _row(
                    record,
                    REFERENCE,
                    REFERENCE_ROWS[record["kind"]],
                    metric,
                    mean=float(record[metric]),
                    n=1,
                    n_runs=1,
                    source=source,
                )
            )
    return rows


def _distinct(values: Iterable[str]) -> str:
    """One value if all seeds agree, else every distinct one joined by ';' (as Tables 1-2)."""
    return ";".join(dict.fromkeys(values))


def _row(record: Mapping[str, Any], method: str, divergence: str, metric: str, **values: Any) -> ResultRow:
    """A row with the facts every score record of the table states (dataset, n, classifier, scale)."""
    dataset = str(record.get("dataset"))
    return make_row(
        dataset,
        dataset,
        method,
        divergence,
        metric,
        n_samples=record.get("n"),
        classifier_test_accuracy=(record.get("classifier") or {}).get("test_accuracy"),
        preset=record.get("preset"),
        scale=record.get("scale"),
        standin_data=bool(record.get("standin_data")),
        **values,
    )


def classifier_table(
    score_paths: Iterable[str | Path], run_paths: Iterable[str | Path], out: str | Path
) -> list:
    scores = [_read_json(path, "score file") for path in score_paths]
    runs = [_read_json(path, "run metrics") for path in run_paths]
    datasets = {record.get("dataset") for record in scores}
    if len(datasets) > 1:
        raise ClassifierTableError(
            f"score files of several datasets ({sorted(map(str, datasets))}): one table each"
        )
    for record in scores:
        missing = [metric for metric in METRICS if metric not in record]
        if missing:
            raise ClassifierTableError(
                f"a score file lacks {', '.join(missing)}: not written by classifier-score"
            )
    rows = build_rows(scores, runs)
    write_results(rows, out)
    return rows


def add_commands(subparsers: Any) -> None:
    table = subparsers.add_parser(
        "classifier-table",
        help="the table of a classifier-scored dataset (Fashion-MNIST) from its score and run files",
    )
    table.add_argument("--config", nargs="+", required=True)
    table.add_argument(
        "--scores", nargs="+", required=True, type=Path, help="classifier-score JSONs (runs, references)"
    )
    table.add_argument(
        "--runs", nargs="*", default=[], type=Path, help="train-images metrics.json of the runs"
    )
    table.add_argument("--out", required=True, type=Path, help="results/tables/<dataset>.csv")
    table.set_defaults(handler=_command)


def _command(args: Any) -> int:
    rows = classifier_table(args.scores, args.runs, args.out)
    print(f"classifier-table: {len(rows)} rows -> {args.out}")
    return 0
