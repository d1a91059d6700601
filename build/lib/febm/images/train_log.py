"""The live CSV logs of an image run (per-iteration scalars, the monitor's scores), resumable."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from febm.io import write_text_atomic

LOG_FIELDS = [
    "iteration", "warmup", "loss_e", "loss_h", "bound",
    "e_pos_mean", "e_neg_mean", "h_pos_mean", "h_neg_mean", "seconds",
]  # fmt: skip


# --- the live CSV log ---------------------------------------------------------------------------


class TrainLog:
    """Per-iteration CSV in the checkpoint folder; on resume, rows past the checkpoint are dropped."""

    def __init__(
        self, path: Path, resume_iteration: int, fields: list[str] = LOG_FIELDS, *, after_step: bool = False
    ) -> None:
        """``after_step``: rows count iterations done (the monitor scores after iteration N, before the
        checkpoint of N), so a resume from N keeps the row of N; train-log rows name the step's index."""
        self.path = path
        self.fields = fields
        keep_below = resume_iteration + 1 if after_step else resume_iteration
        kept: list[dict[str, str]] = []
        if resume_iteration > 0 and path.is_file():
            with path.open(newline="") as handle:
                rows = list(csv.DictReader(handle))
            # A kill can cut the last line short (a buffer flushed mid-row): keep only whole rows.
            kept = [
                row
                for row in rows
                if None not in row.values() and None not in row and float(row["iteration"]) < keep_below
            ]
        write_text_atomic(path, csv_text(kept, fields))
        self.handle = path.open("a", newline="")
        self.writer = csv.DictWriter(self.handle, fieldnames=fields, extrasaction="ignore")

    def append(self, row: dict[str, Any]) -> None:
        self.writer.writerow({key: "" if row.get(key) is None else row[key] for key in self.fields})

    def flush(self) -> None:
        self.handle.flush()

    def close(self) -> None:
        self.handle.close()

    def rows(self) -> list[dict[str, str]]:
        if not self.handle.closed:
            self.flush()
        with self.path.open(newline="") as handle:
            return list(csv.DictReader(handle))


def csv_text(rows: list[dict[str, str]], fields: list[str] = LOG_FIELDS) -> str:
    import io

    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fields, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()
