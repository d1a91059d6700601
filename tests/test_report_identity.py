"""What a report input is comes from the input itself: a sample grid's run from its PNG's text chunks, a
metrics file's study from its record, a stability row's name and a benchmark's stage from their records.

The files are put where the workflow would never put them (or where it would put another run's), so a
report that still read paths would show them wrongly.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from febm.cli import main as febm_main
from febm.evaluation.figures import identity_text, write_png
from febm.images.grid import TRAINING_SAMPLES, read_figure_text
from febm.reporting.errors import ReportInputError
from febm.reporting.labels import study_labels, study_of_record
from febm.reporting.render import ReportInputs, render_report
from tests.grid_files import evaluation_grid, run_record, training_grid
from tests.test_report_fashion_mnist import laptop_config, write_study
from tests.test_report_fashion_mnist import render as render_study
from tests.test_report_render import PAPER, TEMPLATES, section, smoke_config, tiny_png


def render(root: Path, config: dict | None = None, **files) -> str:
    out = root / "report" / "index.html"
    inputs = ReportInputs(config=config or smoke_config(), templates=TEMPLATES, paper=PAPER, out=out, **files)
    return render_report(inputs).read_text()


def report_error(tmp_path: Path, capsys, *arguments: str) -> str:
    config = tmp_path / "config.yaml"
    config.write_text("preset: smoke\n")
    out = tmp_path / "r.html"
    status = febm_main(
        ["report", "--config", str(config), "--templates", str(TEMPLATES), *arguments, "--out", str(out)]
    )
    error = capsys.readouterr().err
    assert status == 2 and len(error.strip().splitlines()) == 1 and not out.exists()
    return error


def test_save_grid_embeds_the_identity_of_the_run_it_is_given(tmp_path):
    meta = {**run_record("celeba32", "cd", "kl", 4), "iterations": 10}  # model.pt's metadata
    grid = training_grid(tmp_path / "grid.png", meta)
    with Image.open(grid) as image:
        assert image.format == "PNG" and image.size == (22, 22)  # 2 x 2 tiles of 8 px, 2 px padding
        assert image.text["febm.dataset"] == "celeba32" and image.text["febm.seed"] == "4"
    assert read_figure_text(grid) == {
        "figure": TRAINING_SAMPLES,
        "dataset": "celeba32",
        "method": "cd",
        "divergence": "kl",
        "seed": "4",
    }
    assert read_figure_text(training_grid(tmp_path / "snapshot.png", None)) == {"figure": TRAINING_SAMPLES}


def test_grids_are_placed_by_their_png_not_their_path(tmp_path):
    # Both files sit where CIFAR-10 grids would; their PNGs say otherwise, and the report follows the PNGs.
    misleading = tmp_path / "results" / "figures" / "samples" / "cifar10" / "febm" / "kl"
    uncurated = evaluation_grid(misleading / "seed0.png", run_record("celeba32", "cd", "kl", 7))
    snapshot = training_grid(
        misleading / "seed1" / "samples.png", run_record("fashion_mnist", "febm", "kl", 2)
    )
    samples = section(render(tmp_path, samples=[uncurated, snapshot]), "samples")
    assert "cifar10" not in samples
    assert re.search(r"<h3>CelebA 32×32 \(unconditional\)</h3>\s*<p[^>]*>Uncurated", samples)
    assert 'id="samples-celeba32_cd_kl_seed7"' in samples and "celeba32 / cd / kl / seed7" in samples
    assert "Fashion-MNIST" in samples and "as the training run saved them" in samples
    assert 'id="samples-fashion_mnist_febm_kl_seed2"' in samples


@pytest.mark.parametrize("writer", ["by hand", "snapshot without a run", "samples without a record"])
def test_a_grid_without_a_run_identity_is_a_one_line_error(tmp_path, capsys, writer):
    path = tmp_path / "results" / "figures" / "samples" / "cifar10" / "febm" / "kl" / "seed0.png"
    if writer == "by hand":
        tiny_png(path)
    elif writer == "snapshot without a run":
        training_grid(path, None)
    else:
        evaluation_grid(path, None)
        assert "records no run identity" in capsys.readouterr().err  # image-figure warned when writing it
    error = report_error(tmp_path, capsys, "--samples", str(path))
    assert "has no run identity: written by an older febm" in error and "sample_grid" in error


def test_a_figure_that_is_not_a_sample_grid_is_refused(tmp_path, capsys):
    path = tmp_path / "process.png"
    text = identity_text("process", {"model": run_record("cifar10", "febm", "kl", 0)}, "model.pt")
    write_png(path, np.zeros((4, 4, 3), np.uint8), text=text)
    assert "'process' figure, not a sample grid" in report_error(tmp_path, capsys, "--samples", str(path))


def test_two_grids_of_one_run_are_an_error_not_one_overwriting_the_other(tmp_path):
    run = run_record("cifar10", "febm", "kl", 0)
    grids = [evaluation_grid(tmp_path / "a.png", run), training_grid(tmp_path / "b" / "samples.png", run)]
    with pytest.raises(ReportInputError, match="two sample grids of cifar10 / febm / kl / seed0"):
        render(tmp_path, samples=grids)


def test_grids_with_fewer_rows_than_classes_are_not_called_class_by_row(tmp_path):
    # `febm image-figure --figure grid` falls back to sample order then; the caption must follow it.
    html = render_study(tmp_path, laptop_config(grid_rows=2), **write_study(tmp_path))
    samples = section(html, "samples")
    assert "the first samples in sampling order" in samples and "row r holds" not in samples


def test_training_snapshots_are_not_called_class_by_row(tmp_path):
    # A training run's samples.png is a plain near-square grid, whatever the config.
    snapshot = training_grid(
        tmp_path / "samples.png", run_record("fashion_mnist", "febm", "kl", 0), channels=1
    )
    samples = section(render_study(tmp_path, laptop_config(), samples=[snapshot]), "samples")
    assert "as the training run saved them" in samples and "row r holds" not in samples
    assert 'id="samples-fashion_mnist_febm_kl_seed0"' in samples


def write_json(path: Path, record: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record))
    return path


def test_study_labels_come_from_the_records_not_the_paths(tmp_path):
    # A toy run's metrics where a CIFAR-10 score would lie, and a CelebA score inside the toy's folders.
    toy = write_json(
        tmp_path / "results" / "images" / "scores" / "cifar10" / "febm" / "kl" / "seed0.json",
        {"study": "toy", "dataset": "mixture", "method": "febm", "divergence": "kl", "seed": 0,
         "preset": "smoke", "scale": "reduced: 40 steps"},
    )  # fmt: skip
    celeba = write_json(
        tmp_path / "results" / "toy" / "runs" / "febm" / "kl" / "seed0" / "metrics.json",
        {**run_record("celeba32", "febm", "kl", 0), "standin_data": True},
    )
    labels = study_labels({"preset": "paper"}, [toy, celeba])
    assert labels["toy"] == ["reduced: 40 steps", "smoke preset"]
    assert labels["celeba32"] == ["stand-in data", "smoke preset"]
    assert labels["cifar10"] == [] and labels["fashion_mnist"] == []


@pytest.mark.parametrize(
    ("record", "study"),
    [
        ({"study": "toy"}, "toy"),
        ({"dataset": "mixture", "method": "cd"}, "toy"),
        ({"dataset": "fashion_mnist", "kind": "reference_train", "method": None}, "fashion_mnist"),
        ({"dataset": "cifar10"}, "cifar10"),
        ({"dataset": "svhn"}, None),
        ({"preset": "smoke"}, None),
    ],
)
def test_study_of_record(record, study):
    assert study_of_record(record) == study


def test_a_metrics_file_that_records_no_study_is_a_one_line_error(tmp_path, capsys):
    # An older toy run's metrics (no study, no dataset): its labels would silently go missing otherwise.
    old = write_json(tmp_path / "results" / "toy" / "runs" / "febm" / "kl" / "seed0" / "metrics.json",
                     {"method": "febm", "divergence": "kl", "seed": 0, "preset": "smoke"})  # fmt: skip
    error = report_error(tmp_path, capsys, "--metrics", str(old))
    assert "records neither study 'toy' nor a dataset the report shows" in error and "rerun" in error


def test_stability_rows_are_named_by_their_record(tmp_path, capsys):
    named = write_json(tmp_path / "kl.json", {"divergence": "reverse_kl", "statement": "stable"})
    assert "reverse_kl" in section(render(tmp_path, stability=[named]), "stability")
    nameless = write_json(tmp_path / "jensen_shannon.json", {"statement": "stable"})
    assert "records no divergence" in report_error(tmp_path, capsys, "--stability", str(nameless))


def test_a_benchmark_that_records_its_rule_is_counted_under_it(tmp_path):
    header = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time"
    extended = tmp_path / "results" / "benchmarks" / "misplaced" / "job.tsv"  # snakemake --benchmark-extended
    extended.parent.mkdir(parents=True)
    extended.write_text(
        f"{header}\tjobid\trule_name\n12.0\t0:00:12\t1\t0\t0\t0\t0\t0\t0\t0\t3\tscore_images\n"
    )
    plain = tmp_path / "results" / "benchmarks" / "toy_train" / "job.tsv"  # Snakemake's default format
    plain.parent.mkdir(parents=True)
    plain.write_text(f"{header}\n2.0\t0:00:02\t1\t0\t0\t0\t0\t0\t0\t0\n")
    run = section(render(tmp_path, benchmarks=[extended, plain]), "run")
    assert "score_images</td>" in run and "toy_train</td>" in run and "misplaced" not in run
