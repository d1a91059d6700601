"""The report's fidelity section: per image dataset, every switch of ``febm.fidelity`` with the released
code's value and source and the values the runs recorded (each with the runs that used it).

Built only from what the runs wrote (``fidelity`` in training ``metrics.json`` and in score files), so a
run made under other settings than today's config shows as such.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from febm.fidelity import SWITCHES
from febm.reporting.labels import read_metrics


@dataclass
class SwitchValue:
    text: str
    follows_original: bool
    runs: list[str] = field(default_factory=list)


@dataclass
class SwitchRow:
    key: str
    original: str
    source: str
    original_does: str
    otherwise: str
    values: list[SwitchValue] = field(default_factory=list)

    @property
    def all_follow(self) -> bool:
        return all(value.follows_original for value in self.values)


@dataclass
class DatasetFidelity:
    dataset: str
    rows: list[SwitchRow]

    @property
    def deviations(self) -> int:
        return sum(not row.all_follow for row in self.rows)


def _text(value: Any) -> str:
    return json.dumps(value) if not isinstance(value, str) else value


def _run_name(record: dict[str, Any]) -> str:
    return f"{record.get('method')}/{record.get('divergence')}/seed{record.get('seed')}"


def fidelity_sections(metrics_paths: Iterable[str | Path]) -> list[DatasetFidelity]:
    """One section per dataset whose records carry switches, the switches in the registry's order."""
    per_run: dict[str, dict[str, dict[str, dict[str, Any]]]] = defaultdict(lambda: defaultdict(dict))
    for path in metrics_paths:
        record = read_metrics(path)
        entries = record.get("fidelity")
        if not isinstance(entries, list) or not record.get("dataset") or record.get("study") == "toy":
            continue
        run = per_run[str(record["dataset"])][_run_name(record)]
        for entry in entries:
            if isinstance(entry, dict) and "key" in entry:
                run[str(entry["key"])] = entry
    sections = []
    for dataset in sorted(per_run):
        rows: dict[str, SwitchRow] = {}
        for run_name in sorted(per_run[dataset]):
            for key, entry in per_run[dataset][run_name].items():
                row = rows.setdefault(
                    key,
                    SwitchRow(
                        key,
                        _text(entry.get("original")),
                        str(entry.get("source", "")),
                        str(entry.get("original_does", "")),
                        str(entry.get("otherwise", "")),
                    ),
                )
                text = _text(entry.get("value"))
                value = next((v for v in row.values if v.text == text), None)
                if value is None:
                    value = SwitchValue(text, bool(entry.get("follows_original")))
                    row.values.append(value)
                value.runs.append(run_name)
        order = [".".join(switch.path(dataset)) for switch in SWITCHES]
        ranked = sorted(
            rows.values(), key=lambda row: order.index(row.key) if row.key in order else len(order)
        )
        sections.append(DatasetFidelity(dataset, ranked))
    return sections
