"""Render the report: gather every input into one context and fill report/index.html.j2."""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from febm.config import config_hash
from febm.io import write_text_atomic
from febm.reporting.benchmarks import stage_times
from febm.reporting.errors import ReportInputError
from febm.reporting.fidelity import fidelity_sections
from febm.reporting.figures import Picture, curve_caption, curve_figures, paper_figures, sample_grids
from febm.reporting.labels import TOY, badge_text, read_metrics, study_labels
from febm.reporting.provenance import collect_provenance
from febm.reporting.table_csv import table_of_file
from febm.reporting.table_specs import REPORT_TABLES
from febm.reporting.tables import TableView, build_table

# git finds the checkout from any folder inside it; an installed wheel is no checkout and says so.
CODE_FOLDER = Path(__file__).resolve().parent
TEMPLATE_NAME = "index.html.j2"
DATASET_NAMES = {
    "cifar10": "CIFAR-10 (class-conditional)",
    "celeba32": "CelebA 32×32 (unconditional)",
    "fashion_mnist": "Fashion-MNIST (class-conditional, scored by a classifier)",
}
# Row r of a class-conditional sample grid holds samples drawn for class r (febm/evaluation/figures.py).
CLASS_NAMES = {
    "cifar10": (
        "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
    ),
    "fashion_mnist": (
        "T-shirt/top", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle boot",
    ),
}  # fmt: skip
METRIC_DIGITS = {"mu": 4, "sigma": 4, "inception_score": 2, "fid": 2}
PERCENT_METRICS = ("conditional_accuracy", "classifier_test_accuracy")  # fractions, shown as percentages


@dataclass
class ReportInputs:
    config: dict[str, Any]
    templates: Path
    paper: Path
    out: Path
    tables: list[Path] = field(default_factory=list)
    figures: list[Path] = field(default_factory=list)
    metrics: list[Path] = field(default_factory=list)
    samples: list[Path] = field(default_factory=list)
    stability: list[Path] = field(default_factory=list)
    gpu_check: list[Path] = field(default_factory=list)
    benchmarks: list[Path] = field(default_factory=list)
    curves: list[Path] = field(default_factory=list)  # <dataset>_curve.png of `febm classifier-curve`


def format_number(value: float | None, metric: str = "", signed: bool = False) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    if metric in PERCENT_METRICS:
        value, digits, unit = 100 * value, 1, "%"
    else:
        digits, unit = METRIC_DIGITS.get(metric, 4), ""
    text = (f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}") + unit
    return text.replace("-", "−")


def tables_by_name(paths: list[Path]) -> dict[str, Path]:
    """Each table CSV under the table its rows name (their ``table`` column), whatever the file is called.

    A table the report does not know would silently vanish from it, and two files of one table would
    hide one of them: both are errors instead."""
    known = [spec.anchor for spec in REPORT_TABLES]
    found: dict[str, Path] = {}
    for path in {path.resolve(): path for path in paths}.values():  # one file given twice counts once
        name = table_of_file(path)
        if name not in known:
            raise ReportInputError(
                f"table file {str(path)!r} holds table {name!r}; the report shows only {', '.join(known)}"
            )
        if name in found:
            raise ReportInputError(f"two files for table {name}: {str(found[name])!r} and {str(path)!r}")
        found[name] = path
    return found


def not_run_reason(config: Mapping[str, Any], study: str) -> str:
    if study == TOY:
        if not config["toy"]["enabled"]:
            return "the 1-D study is switched off (toy.enabled: false)"
        return "the workflow did not produce this table"
    images = config["images"]
    if not images["enabled"]:
        return "the image study is switched off (images.enabled: false)"
    if study not in images["datasets"]:
        return f"{study} is not in images.datasets"
    return "the workflow did not produce this table"


def hardware(inputs: ReportInputs) -> list[str]:
    """The devices the numbers were computed on, as recorded by the runs themselves."""
    devices: list[str] = []
    for path in [*inputs.gpu_check, *inputs.metrics]:
        record = read_metrics(path)
        provenance = record.get("provenance", record)
        device = provenance.get("device") if isinstance(provenance, dict) else None
        host = provenance.get("host") if isinstance(provenance, dict) else None
        if device:
            text = f"{device} on {host}" if host else str(device)
            if text not in devices:
                devices.append(text)
    return devices


STABILITY_FACTS = {
    "learned_mu": "learned μ",
    "learned_sigma": "learned σ",
    "mu_optimal": "optimal μ",
    "sigma_optimal": "optimal σ",
}


def stability_rows(paths: list[Path]) -> list[dict[str, Any]]:
    """Per divergence: the stage's own conclusion (`statement`), key numbers, and every scalar."""
    rows = []
    for path in paths:
        record = read_metrics(path)
        if not isinstance(record.get("divergence"), str):  # the row's name: from the record, not the file's
            raise ReportInputError(
                f"stability file {str(path)!r} records no divergence: pass the JSON of `febm toy-stability`"
            )
        scalars = {
            key: value
            for key, value in record.items()
            if isinstance(value, (int, float, str, bool)) and key not in ("config_hash", "statement")
        }
        largest = record.get("max_real_eigenvalue")
        facts = {
            label: record[key] for key, label in STABILITY_FACTS.items() if isinstance(record.get(key), float)
        }
        if isinstance(largest, dict) and isinstance(largest.get("real"), float):
            facts["largest real part of the Jacobian's eigenvalues"] = largest["real"]
        rows.append(
            {
                "name": record["divergence"],
                "statement": record.get("statement", ""),
                "facts": facts,
                "values": scalars,
            }
        )
    return rows


def run_summary(config: Mapping[str, Any]) -> dict[str, Any]:
    toy, images = config["toy"], config["images"]
    return {
        "preset": config["preset"],
        "toy": {
            "enabled": toy["enabled"],
            "divergences": toy["divergences"],
            "seeds": toy["seeds"],
        },
        "images": {
            "enabled": images["enabled"],
            "datasets": [DATASET_NAMES.get(name, name) for name in images["datasets"]],
            "methods": images["methods"],
            "divergences": images["divergences"],
            "seeds": images["seeds"],
            "standin_data": images["standin_data"],
        },
    }


def grid_reading(dataset: str, grids: list[Picture], config: Mapping[str, Any]) -> str:
    """How to read a dataset's sample grids."""
    if not all(grid.uncurated_grid for grid in grids):
        return "Samples of each run as the training run saved them."
    names = CLASS_NAMES.get(dataset, ())
    # `febm image-figure --figure grid` puts one class per row only if every class has a row
    if (
        config["images"].get(dataset, {}).get("conditional")
        and names
        and config["evaluation"]["figures"]["grid_rows"] >= len(names)
    ):
        return (
            f"Uncurated; row r holds the first samples drawn for class r (top to bottom: {', '.join(names)})."
        )
    return "Uncurated: the first samples in sampling order."


def sample_groups(grids: list[Picture], config: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The sample grids per dataset, in the order given, each with a line on how to read them."""
    by_dataset: dict[str, list[Picture]] = {}
    for grid in grids:
        by_dataset.setdefault(grid.dataset, []).append(grid)
    return [
        {
            "title": DATASET_NAMES.get(dataset, dataset),
            "how": grid_reading(dataset, members, config),
            "grids": members,
        }
        for dataset, members in by_dataset.items()
    ]


def attach_curves(
    tables: list[TableView], inputs: ReportInputs, labels: Mapping[str, list[str]], embed: bool
) -> None:
    """Put each quality-vs-iteration figure into its dataset's section, or say why a run section has none."""
    config = inputs.config
    training = {
        table.spec.study: config["images"][table.spec.study]["training"]
        for table in tables
        if table.spec.curve
    }
    captions = {study: curve_caption(settings) for study, settings in training.items()}
    curves = curve_figures(inputs.curves, inputs.out.parent, embed, labels, captions)
    for table in (table for table in tables if table.spec.curve):
        study = table.spec.study
        table.curve = curves.get(study)
        if table.curve is None and table.status == "ok":
            table.curve_missing = (
                f"the runs were not monitored (images.{study}.training.monitor_interval: 0)"
                if not training[study]["monitor_interval"]
                else "the workflow did not produce this figure"
            )


def build_context(inputs: ReportInputs) -> dict[str, Any]:
    config = inputs.config
    labels = study_labels(config, inputs.metrics)
    out_dir = inputs.out.parent
    embed = config["report"]["embed_figures"]
    table_files = tables_by_name(inputs.tables)
    note_facts = {"feature_dim": config["evaluation"]["classifier"]["feature_dim"]}
    tables = [
        build_table(
            spec,
            table_files.get(spec.anchor),
            inputs.paper,
            labels[spec.study],
            not_run_reason(config, spec.study),
            note_facts,
        )
        for spec in REPORT_TABLES
    ]
    attach_curves(tables, inputs, labels, embed)
    figures = paper_figures(inputs.figures, out_dir, embed, labels[TOY])
    return {
        "title": config["report"]["title"],
        "generated": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "summary": run_summary(config),
        "labels": labels,
        "hardware": hardware(inputs),
        "stage_times": sorted(stage_times(inputs.benchmarks), key=lambda stage: -stage.total_seconds),
        "total_seconds": sum(stage.total_seconds for stage in stage_times(inputs.benchmarks)),
        "tables": tables,
        "figures": [(number, figures.get(number)) for number in (1, 2, 3, 4)],
        "toy_enabled": config["toy"]["enabled"],
        "images_enabled": config["images"]["enabled"],
        "samples": sample_groups(sample_grids(inputs.samples, out_dir, embed, labels), config),
        "show_samples": config["report"]["sample_grids"],
        "stability": stability_rows(inputs.stability),
        "fidelity": fidelity_sections(inputs.metrics),
        "provenance": collect_provenance(CODE_FOLDER, config_hash(config)),
        "config_yaml": yaml.safe_dump(json.loads(json.dumps(config)), sort_keys=True),
    }


def render_report(inputs: ReportInputs) -> Path:
    """Write the report atomically and return its path."""
    import jinja2

    from febm.reporting.benchmarks import format_duration

    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(inputs.templates)),
        autoescape=True,  # every value is escaped; the templates hold the only markup
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters["number"] = format_number
    environment.filters["duration"] = format_duration
    environment.filters["badge_text"] = badge_text
    try:
        template = environment.get_template(TEMPLATE_NAME)
    except jinja2.TemplateNotFound:
        raise ReportInputError(f"no template {TEMPLATE_NAME} in {str(inputs.templates)!r}") from None
    html = template.render(**build_context(inputs))
    write_text_atomic(inputs.out, html)
    return inputs.out
