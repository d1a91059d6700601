"""Failed 1-D runs: recorded, counted in Table 5, and reported by a final check (never a missing table).

A training run that cannot continue (a loss term turns non-finite, the energy's parameters leave the valid
region) still writes its ``metrics.json``, with ``status: failed``, the message and the step it stopped at.
Table 5 then averages the converged seeds only and shows ``n converged / n seeds``; figures and the
stability check skip failed runs. ``febm toy-check`` (the workflow's last 1-D rule) exits non-zero when any
run failed, so a workflow that produced every table still says that something went wrong.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from febm.errors import FebmError

STATUS_COMPLETED = "completed"
STATUS_FAILED = "failed"


class ToyRunsFailedError(FebmError):
    """Some 1-D training runs failed (their failure records are in their metrics.json)."""


def is_failed(metrics: Mapping[str, Any]) -> bool:
    """A run recorded as failed (a metrics file without ``status`` predates failure records: completed)."""
    return metrics.get("status", STATUS_COMPLETED) == STATUS_FAILED


def run_name(metrics: Mapping[str, Any]) -> str:
    return f"{metrics.get('method')}/{metrics.get('divergence')}/seed{metrics.get('seed')}"


def failure_summary(records: Iterable[Mapping[str, Any]]) -> str | None:
    """One line naming every failed run and its message, or None when none failed."""
    records = list(records)
    failed = [r for r in records if is_failed(r)]
    if not failed:
        return None
    details = "; ".join(f"{run_name(r)}: {r.get('error', 'no message')}" for r in failed)
    return (
        f"{len(failed)} of {len(records)} toy runs failed ({details}); Table 5 averages only the converged "
        "seeds (n converged / n seeds). Delete a failed run's folder to retrain it, or change toy.train"
    )


def check_runs(run_dirs: Iterable[str | Path]) -> int:
    """Raise ToyRunsFailedError naming the failed runs; returns the number of runs checked otherwise."""
    from febm.toy.runs import load_run

    records = [load_run(run_dir) for run_dir in run_dirs]
    message = failure_summary(records)
    if message is not None:
        raise ToyRunsFailedError(message)
    return len(records)
