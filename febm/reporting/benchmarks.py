"""Wall time per stage from Snakemake's benchmark files (results/benchmarks/<stage>/<job>.tsv)."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from febm.reporting.errors import ReportInputError


@dataclass
class StageTime:
    stage: str
    jobs: int
    total_seconds: float
    longest_seconds: float
    peak_rss_mb: float | None

    @property
    def total_text(self) -> str:
        return format_duration(self.total_seconds)

    @property
    def longest_text(self) -> str:
        return format_duration(self.longest_seconds)


def format_duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, seconds = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    return f"{minutes} min {seconds:02d} s"


def read_benchmark(path: Path) -> tuple[str, float, float | None]:
    """(stage, wall seconds, max RSS in MB or None) of one job; repeated measurements are summed."""
    try:
        with path.open(newline="") as handle:
            rows = list(csv.DictReader(handle, delimiter="\t"))
    except FileNotFoundError:
        raise ReportInputError(f"benchmark file {str(path)!r} does not exist") from None
    if not rows or "s" not in rows[0]:
        raise ReportInputError(f"benchmark file {str(path)!r} has no 's' (wall seconds) column")
    seconds = sum(float(row["s"]) for row in rows)
    rss_values = [float(row["max_rss"]) for row in rows if row.get("max_rss") not in (None, "", "-", "NA")]
    return stage_of(path, rows), seconds, max(rss_values) if rss_values else None


def stage_of(path: Path, rows: list[dict[str, str]]) -> str:
    """The rule the file records (``rule_name``, written with ``snakemake --benchmark-extended``); Snakemake's
    plain format records none, so then the folder the workflow gives each stage: results/benchmarks/<stage>/."""
    recorded = rows[0].get("rule_name")
    return recorded if recorded not in (None, "", "-", "None") else path.parent.name


def stage_times(paths: list[Path]) -> list[StageTime]:
    per_stage: dict[str, list[tuple[float, float | None]]] = {}
    for path in paths:
        stage, seconds, rss = read_benchmark(path)
        per_stage.setdefault(stage, []).append((seconds, rss))
    times = []
    for stage, jobs in per_stage.items():
        rss = [value for _, value in jobs if value is not None and value > 0]
        times.append(
            StageTime(
                stage=stage,
                jobs=len(jobs),
                total_seconds=sum(seconds for seconds, _ in jobs),
                longest_seconds=max(seconds for seconds, _ in jobs),
                peak_rss_mb=max(rss) if rss else None,
            )
        )
    return times
