"""The Fashion-MNIST section's quality-vs-iteration figure (`febm classifier-curve`): shown below the table
with its caption and labels, copied or embedded, absent with one muted line, and placed by what the PNG
states, not by its name."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import pytest

from febm.cli import main as febm_main
from tests.test_report_fashion_mnist import RUNS, laptop_config, render, text_of, write_study
from tests.test_report_render import TEMPLATES, section


def curve_png(path: Path, dataset: str = "fashion_mnist") -> Path:
    """The figure `febm classifier-curve` writes, made by its own function from one tiny monitored run."""
    from febm.evaluation.classifier_curve import make_curve_figure

    run = path.parent / f".{path.stem}_run"
    run.mkdir(parents=True, exist_ok=True)
    (run / "metrics.json").write_text(
        json.dumps({"dataset": dataset, "method": "febm", "divergence": "kl", "seed": 0})
    )
    (run / "monitor.csv").write_text(
        "iteration,conditional_accuracy,fid,inception_score\n50,0.1,900,1.5\n100,0.3,600,2.5\n"
    )
    make_curve_figure([run], [], path)
    return path


def monitored_config(interval: int, samples: int = 250, embed: bool = True) -> dict:
    config = laptop_config()
    config["images"]["fashion_mnist"]["training"].update(monitor_interval=interval, monitor_samples=samples)
    config["report"]["embed_figures"] = embed
    return config


FIGURE = re.compile(r'<figure id="fashion_mnist-curve">(.*?)</figure>', re.S)


def test_the_curve_is_shown_below_the_table_with_its_caption_and_labels(tmp_path):
    curve = curve_png(tmp_path / "results" / "figures" / "fashion_mnist_curve.png")
    html = render(tmp_path, monitored_config(interval=40), **write_study(tmp_path), curves=[curve])
    table = section(html, "fashion_mnist")
    figure = FIGURE.search(table)
    assert figure is not None and table.index("</table>") < figure.start()  # below the results table
    source = re.search(r'<img src="data:image/png;base64,([^"]+)"', figure.group(1)).group(1)
    assert base64.b64decode(source) == curve.read_bytes()  # embedded, this very file
    caption = text_of(re.search(r"<figcaption>(.*?)</figcaption>", figure.group(1), re.S).group(1))
    assert (
        "persistent replay-buffer chains (the newest 250 of them) scored every 40 training iterations"
        in caption
    )
    assert "frozen classifier" in caption and "mean over seeds" in caption
    assert "Dashed: the train split and uniform noise" in caption
    badges = re.findall(r'<span class="label"[^>]*>([^<]*)</span>', figure.group(1))
    assert "laptop preset" in badges and "reduced: 2000 iterations" in badges  # config and run metrics
    assert len(re.findall(r"<img ", html)) == 1 + 2 * len(RUNS)  # once, not also among Figures 1-4


def test_the_curve_is_copied_beside_the_report_when_figures_are_not_embedded(tmp_path):
    curve = curve_png(tmp_path / "results" / "figures" / "fashion_mnist_curve.png")
    html = render(tmp_path, monitored_config(interval=50, embed=False), curves=[curve])
    figure = FIGURE.search(section(html, "fashion_mnist")).group(1)
    assert '<img src="figures/fashion_mnist_curve.png"' in figure and "base64" not in figure
    copy = tmp_path / "results" / "report" / "figures" / "fashion_mnist_curve.png"
    assert copy.read_bytes() == curve.read_bytes()


@pytest.mark.parametrize(
    ("interval", "line"),
    [
        (0, "the runs were not monitored (images.fashion_mnist.training.monitor_interval: 0)"),
        (50, "the workflow did not produce this figure"),
    ],
)
def test_without_a_curve_the_section_has_no_figure_and_one_muted_line(tmp_path, interval, line):
    table = section(render(tmp_path, monitored_config(interval), **write_study(tmp_path)), "fashion_mnist")
    assert "<figure" not in table and "<img" not in table
    muted = re.findall(r'<p class="muted">(.*?)</p>', table, re.S)
    assert muted == [f"No quality-vs-iteration figure: {line}."]


def test_a_study_that_did_not_run_says_nothing_about_its_curve(tmp_path):
    table = section(render(tmp_path, monitored_config(interval=0)), "fashion_mnist")
    assert "quality-vs-iteration" not in table and "<figure" not in table


def test_febm_report_takes_curves_and_rejects_one_it_does_not_know(tmp_path, capsys):
    config = tmp_path / "config.yaml"
    config.write_text("preset: smoke\nreport: {embed_figures: false}\n")
    curve = curve_png(tmp_path / "results" / "figures" / "fashion_mnist_curve.png")
    out = tmp_path / "report" / "index.html"
    arguments = ["report", "--config", str(config), "--templates", str(TEMPLATES), "--out", str(out)]
    assert febm_main([*arguments, "--curves", str(curve)]) == 0
    assert '<img src="figures/fashion_mnist_curve.png"' in section(out.read_text(), "fashion_mnist")
    capsys.readouterr()
    wrong = curve_png(tmp_path / "results" / "figures" / "fashion_mnist_curve2.png", dataset="cifar10")
    assert (
        febm_main([*arguments, "--curves", str(wrong)]) == 2
    )  # its name does not matter: what it states does
    error = capsys.readouterr().err
    assert "fashion_mnist_curve2.png" in error and "of 'cifar10'" in error and "fashion_mnist" in error
    assert len(error.strip().splitlines()) == 1
