"""The Fashion-MNIST section of the report, fed by the real producer of its table.

results/tables/fashion_mnist.csv is written here by ``febm.evaluation.classifier_table`` (build_rows,
write_table) from score records shaped like ``classifier_score_record``'s output, so a change of that
layout shows up here. The numbers are made up: these tests check that the report shows them
faithfully, marks the reference rows and labels every number, not that they are good.
"""

from __future__ import annotations

import json
import re
import statistics
from pathlib import Path

import pytest

from febm.cli import main as febm_main
from febm.evaluation.classifier_table import build_rows
from febm.reporting.render import ReportInputs, render_report
from febm.results_schema import make_row, write_results
from tests.grid_files import evaluation_grid
from tests.test_report_render import PAPER, TEMPLATES, section, smoke_config

CLASSIFIER_ACCURACY = 0.9187
# (method, divergence) -> per seed (conditional accuracy, FID, Inception Score); made-up numbers.
RUNS = {
    ("febm", "jensen_shannon"): [(0.61, 41.5, 5.25), (0.65, 38.25, 5.75)],
    ("febm", "kl"): [(0.42, 60.0, 4.0), (0.46, 58.0, 4.5)],
    ("febm", "reverse_kl"): [(0.55, 45.0, 5.0), (0.57, 44.0, 5.5)],
    ("febm", "squared_hellinger"): [(0.58, 43.0, 5.1), (0.6, 42.0, 5.3)],
    ("cd", "kl"): [(0.33, 70.0, 3.5), (0.37, 66.0, 3.9)],
}
REFERENCES = {"train": (0.9412, 1.234, 9.125), "noise": (0.1003, 912.5, 1.0625)}
ITERATIONS = 2000
WALL_SECONDS = 480.0


def score_record(
    kind: str, method: str | None, divergence: str | None, seed: int | None, values, preset: str
):
    """A record with the keys `classifier_score_record` writes (febm/evaluation/classifier_commands.py)."""
    accuracy, fid, inception = values
    n = 1000
    scale = f"{n} samples, {ITERATIONS} training iterations" if kind == "samples" else f"{n} images"
    return {
        "dataset": "fashion_mnist",
        "method": method,
        "divergence": divergence,
        "seed": seed,
        "kind": kind,
        "fid": fid,
        "conditional_accuracy": accuracy,
        "chance_accuracy": 0.1,
        "inception_score": inception,
        "inception_score_std": 0.0,
        "inception_score_splits": 1,
        "predicted_class_fractions": [0.1] * 10,
        "n": n,
        "samples": None,
        "protocol": "paper" if kind == "samples" else None,
        "protocol_settings": None,
        "checkpoint": None,
        "training_iterations": ITERATIONS if kind == "samples" else None,
        "reference": {"set": "test", "n": 10000, "data_path": "resources/data/fashion_mnist.npz"},
        "classifier": {"path": "c.pt", "sha256": "0" * 64, "test_accuracy": CLASSIFIER_ACCURACY, "epochs": 3},
        "preset": preset,
        "scale": scale,
        "standin_data": False,
        "config_hash": "f" * 16,
        "provenance": {"device": "cpu", "host": "testhost"},
        "wall_seconds": 3.0,
    }


def write_study(root: Path, preset: str = "laptop") -> dict[str, list[Path]]:
    """Score and run files in the workflow's layout, the table from them, and one grid per run (by
    `febm image-figure --figure grid`)."""
    scores, runs, metrics, samples = [], [], [], []
    for (method, divergence), per_seed in RUNS.items():
        for seed, values in enumerate(per_seed):
            run = f"fashion_mnist/{method}/{divergence}/seed{seed}"
            record = score_record("samples", method, divergence, seed, values, preset)
            run_record = {
                "dataset": "fashion_mnist",
                "method": method,
                "divergence": divergence,
                "seed": seed,
                "iterations": ITERATIONS,
                "wall_seconds": WALL_SECONDS,
                "preset": preset,
                "scale": f"reduced: {ITERATIONS} iterations",
                "standin_data": False,
            }
            for path, data in [
                (root / f"results/images/scores/{run}.json", record),
                (root / f"results/images/runs/{run}/metrics.json", run_record),
            ]:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(json.dumps(data))
                metrics.append(path)
            scores.append(record)
            runs.append(run_record)
            samples.append(
                evaluation_grid(root / f"results/figures/samples/{run}.png", run_record, channels=1)
            )
    for reference, values in REFERENCES.items():
        record = score_record(f"reference_{reference}", None, None, None, values, preset)
        path = root / f"results/images/scores/fashion_mnist/reference/{reference}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(record))
        metrics.append(path)
        scores.append(record)
    table = root / "results" / "tables" / "fashion_mnist.csv"
    write_results(build_rows(scores, runs), table)
    return {"tables": [table], "metrics": metrics, "samples": samples}


def laptop_config(grid_rows: int = 10, **images) -> dict:
    config = smoke_config(images={"datasets": ["fashion_mnist"], "standin_data": False, **images})
    config["preset"] = "laptop"
    config["evaluation"]["figures"].update(grid_rows=grid_rows, grid_cols=10)  # the laptop preset's grids
    return config


def render(root: Path, config: dict, **files) -> str:
    out = root / "results" / "report" / "index.html"
    render_report(ReportInputs(config=config, templates=TEMPLATES, paper=PAPER, out=out, **files))
    return out.read_text()


def text_of(html: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


def lines(table_html: str, css: str) -> dict[str, list[str]]:
    """'<method> | <divergence>' -> the text of each number cell, for the rows of one class."""
    found = {}
    for row in re.findall(rf'<tr class="{css}">(.*?)</tr>', table_html, re.S):
        names = [text_of(cell) for cell in re.findall(r"<td>(.*?)</td>", row, re.S)]
        cells = [text_of(cell) for cell in re.findall(r'<td class="num[^"]*">(.*?)</td>', row, re.S)]
        found[" | ".join(names)] = cells
    return found


def percent(value: float) -> str:
    return f"{100 * value:.1f}%"


@pytest.fixture(scope="module")
def laptop_report(tmp_path_factory) -> str:
    root = tmp_path_factory.mktemp("laptop")
    return render(root, laptop_config(), **write_study(root))


def test_our_rows_show_mean_std_and_n_over_seeds_without_a_paper_column(laptop_report):
    table = section(laptop_report, "fashion_mnist")
    assert "Fashion-MNIST (real images, class-conditional): scored by a classifier" in table
    ours = lines(table, "ours")
    assert len(ours) == len(RUNS)
    accuracy, fid, inception = zip(*RUNS[("febm", "jensen_shannon")], strict=True)
    js = ours["f-EBM | Jensen-Shannon"]
    assert js[0].startswith(
        f"{percent(statistics.fmean(accuracy))} ± {percent(statistics.stdev(accuracy))} (n = 2)"
    )
    assert js[1].startswith(f"{statistics.fmean(fid):.2f} ± {statistics.stdev(fid):.2f} (n = 2)")
    assert js[2].startswith(f"{statistics.fmean(inception):.2f} ± {statistics.stdev(inception):.2f} (n = 2)")
    assert js[3:] == ["1,000", str(ITERATIONS), "8 min 00 s"]  # images scored, iterations, training time
    header = text_of(table[table.index("<thead>") : table.index("</thead>")])
    assert header.startswith("Method Divergence Conditional accuracy FID Inception Score Images scored")
    assert "Paper" not in header and "Δ" not in header and "shown for reference" not in table


def test_rows_follow_table_1s_order_and_references_come_last(laptop_report):
    table = section(laptop_report, "fashion_mnist")
    order = [
        name
        for name in re.findall(r"<tr class=\"(?:ours|reference)\">\s*<td>(.*?)</td><td>(.*?)</td>", table)
    ]
    assert [f"{method} | {divergence}" for method, divergence in order] == [
        "Contrastive divergence | KL",
        "f-EBM | KL",
        "f-EBM | Reverse KL",
        "f-EBM | Squared Hellinger",
        "f-EBM | Jensen-Shannon",
        "Reference | train split (what perfect samples give)",
        "Reference | uniform noise (what nothing learnt gives)",
    ]


def test_reference_rows_are_marked_as_references(laptop_report):
    table = section(laptop_report, "fashion_mnist")
    references_body = table[table.index('<tbody class="references">') :]
    assert "References, scored the same way" in references_body
    references = lines(references_body, "reference")
    assert set(references) == {
        "Reference | train split (what perfect samples give)",
        "Reference | uniform noise (what nothing learnt gives)",
    }
    train = references["Reference | train split (what perfect samples give)"]
    noise = references["Reference | uniform noise (what nothing learnt gives)"]
    accuracy, fid, inception = REFERENCES["train"]
    assert train[0].startswith(percent(accuracy)) and train[1].startswith(f"{fid:.2f}")
    assert train[2].startswith(f"{inception:.2f}") and train[3:] == ["1,000", "–", "–"]
    assert noise[1].startswith(f"{REFERENCES['noise'][1]:.2f}")
    assert not any("n = " in cell or "±" in cell for cell in train + noise)  # one scoring, not seeds
    assert "Reference" not in text_of(table[: table.index('<tbody class="references">')])


def test_note_explains_the_metrics_and_states_the_classifier_accuracy(laptop_report):
    table = text_of(section(laptop_report, "fashion_mnist"))
    assert "Conditional accuracy: the share of samples the classifier assigns to the class" in table
    assert "chance is 10%" in table and "128-d penultimate features" in table and "test split" in table
    assert "exp(E_x KL(p(y|x) ‖ p(y)))" in table and "$" not in table
    assert f"Test-split accuracy of the scoring classifier: {percent(CLASSIFIER_ACCURACY)}" in table


def test_every_number_is_labelled_with_the_preset_and_scale(laptop_report):
    table = section(laptop_report, "fashion_mnist")
    banner = text_of(re.search(r'<p class="banner">(.*?)</p>', table, re.S).group(1))
    assert "laptop preset" in banner and "1000 samples, 2000 training iterations" in banner
    rows = re.findall(r'<tr class="(?:ours|reference)">(.*?)</tr>', table, re.S)
    cells = [cell for row in rows for cell in re.findall(r'<td class="num ours">(.*?)</td>', row, re.S)]
    assert len(cells) == 3 * (len(RUNS) + len(REFERENCES))
    badges = [re.search(r'<span class="label" title="([^"]*)">', cell) for cell in cells]
    assert all(badge and "laptop preset" in badge.group(1) for badge in badges)
    summary = re.search(r'<p class="table-fact">(.*?)</p>', table, re.S).group(1)
    assert 'class="label"' in summary


def test_labels_come_from_the_inputs(tmp_path):
    # Negative control for the test above: another preset in the records and config, another label.
    config = laptop_config()
    config["preset"] = "smoke"
    table = section(render(tmp_path, config, **write_study(tmp_path, preset="smoke")), "fashion_mnist")
    assert "smoke preset" in table and "laptop preset" not in table


def test_sample_grids_of_the_runs_are_shown_and_labelled(laptop_report):
    samples = section(laptop_report, "samples")
    assert "<h3>Fashion-MNIST (class-conditional, scored by a classifier)</h3>" in samples
    assert "row r holds the first samples drawn for class r (top to bottom: T-shirt/top, trouser," in samples
    figures = re.findall(
        r'<figure id="samples-fashion_mnist_([a-z_]+)_seed(\d)">(.*?)</figure>', samples, re.S
    )
    assert len(figures) == 2 * len(RUNS)
    assert all("laptop preset" in body and ">reduced<" in body for *_, body in figures)
    assert all(
        "1000 samples, 2000 training iterations" in body for *_, body in figures
    )  # from the score files
    assert "fashion_mnist / febm / jensen_shannon / seed0" in samples


def test_section_sits_after_tables_1_and_2_with_a_nav_link(laptop_report):
    assert '<a href="#fashion_mnist">Fashion-MNIST</a>' in laptop_report
    positions = [
        laptop_report.index(f'<section id="{anchor}">') for anchor in ("table1", "table2", "fashion_mnist")
    ]
    assert positions == sorted(positions) and laptop_report.index('<section id="figures">') > positions[-1]
    run = text_of(section(laptop_report, "run"))
    assert "Fashion-MNIST (class-conditional, scored by a classifier)" in run


@pytest.mark.parametrize(
    ("images", "reason"),
    [
        ({"datasets": ["cifar10"]}, "fashion_mnist is not in images.datasets"),
        ({"enabled": False}, "the image study is switched off (images.enabled: false)"),
        ({}, "the workflow did not produce this table"),
    ],
)
def test_not_run_shows_the_reason_and_no_empty_table(tmp_path, images, reason):
    table = section(render(tmp_path, laptop_config(**images)), "fashion_mnist")
    assert "not run" in table and reason in table
    assert '<table class="results">' not in table and "shown for reference" not in table


def test_a_table_the_report_does_not_know_is_a_one_line_error(tmp_path, capsys):
    config = tmp_path / "config.yaml"
    config.write_text("preset: smoke\n")
    unknown = tmp_path / "results" / "tables" / "fashion_mnist.csv"  # the right name, another table inside
    unknown.parent.mkdir(parents=True)
    write_results([make_row("mnist", "mnist", "f-EBM", "kl", "fid", mean=1.0, n=1, n_runs=1)], unknown)
    arguments = ["report", "--config", str(config), "--out", str(tmp_path / "r.html"), "--tables"]
    assert febm_main([*arguments, str(unknown)]) == 2
    error = capsys.readouterr().err
    assert (
        "holds table 'mnist'" in error and "fashion_mnist" in error and len(error.strip().splitlines()) == 1
    )
    assert not (tmp_path / "r.html").exists()
    twice = tmp_path / "copy" / "other_name.csv"  # a second file of one table, under any name
    twice.parent.mkdir()
    write_results([make_row("table1", "cifar10_conditional", "f-EBM", "kl", "fid", mean=1.0, n=1)], twice)
    write_results([make_row("table1", "cifar10_conditional", "f-EBM", "kl", "fid", mean=2.0, n=1)], unknown)
    assert febm_main([*arguments, str(unknown), str(twice)]) == 2
    assert "two files for table table1" in capsys.readouterr().err
