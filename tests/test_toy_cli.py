"""The 1-D study's commands end to end on a tiny config, and their one-line errors."""

from __future__ import annotations

import csv
import json

import pytest
import torch
import yaml

from febm.cli import main
from febm.reporting.tables import our_rows
from febm.results_schema import read_results

TINY = {
    "preset": "smoke",
    "toy": {
        "divergences": ["kl", "reverse_kl"],
        "seeds": [0, 1],
        "train": {
            "iterations": 40,
            "h_warmup_iterations": 10,
            "warmup_iterations": 5,
            "checkpoint_every": 20,
            "log_every": 10,
        },
        "convergence": {"inits": 2, "iterations": 30},
        "density_ratio": {"proposals": 2000},
        "stability": {"grid_nodes": 101, "refine_steps": 5},
        "figures": {"dpi": 50},
    },
}
PAPER = "febm/data/reported_results.csv"


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    root = tmp_path_factory.mktemp("toy")
    config = root / "tiny.yaml"
    config.write_text(yaml.safe_dump(TINY))
    c = str(config)
    for d in ("kl", "reverse_kl"):
        assert (
            main(["toy-optimum", "--config", c, "--divergence", d, "--out", str(root / f"opt/{d}.json")]) == 0
        )
    runs = []
    for method, d, seed in [
        ("febm", "kl", 0),
        ("febm", "kl", 1),
        ("febm", "reverse_kl", 0),
        ("cd", "kl", 0),
        ("mle", "kl", 0),
    ]:
        out = root / f"runs/{method}/{d}/seed{seed}"
        args = [
            "toy-train",
            "--config",
            c,
            "--method",
            method,
            "--divergence",
            d,
            "--seed",
            str(seed),
            "--optimum",
            str(root / f"opt/{d}.json"),
            "--out-dir",
            str(out),
            "--no-progress",
        ]
        assert main(args) == 0
        runs.append(str(out))
    convergence = str(root / "conv/kl.csv")
    assert (
        main(
            [
                "toy-convergence",
                "--config",
                c,
                "--divergence",
                "kl",
                "--optimum",
                str(root / "opt/kl.json"),
                "--out",
                convergence,
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "toy-stability",
                "--config",
                c,
                "--divergence",
                "kl",
                "--optimum",
                str(root / "opt/kl.json"),
                "--run-dirs",
                runs[0],
                runs[1],
                "--out",
                str(root / "stability/kl.json"),
            ]
        )
        == 0
    )
    optima = [str(root / "opt/kl.json"), str(root / "opt/reverse_kl.json")]
    assert (
        main(
            [
                "toy-table",
                "--config",
                c,
                "--optima",
                *optima,
                "--runs",
                *runs,
                "--paper",
                PAPER,
                "--out",
                str(root / "tables/table5.csv"),
            ]
        )
        == 0
    )
    for number in (1, 2, 3, 4):
        args = [
            "toy-figure",
            "--figure",
            str(number),
            "--config",
            c,
            "--optima",
            *optima,
            "--runs",
            *runs,
            "--out",
            str(root / f"figures/figure{number}.png"),
        ]
        if number == 4:
            args += ["--convergence", convergence]
        assert main(args) == 0
    return root


def test_optimum_file(study):
    optimum = json.loads((study / "opt/kl.json").read_text())
    assert optimum["divergence"] == "kl" and optimum["mu"] == pytest.approx(1.01, abs=1e-6)
    assert {"divergence_value", "preset", "config_hash", "provenance"} <= set(optimum)


def test_run_outputs(study):
    run = study / "runs/febm/kl/seed0"
    metrics = json.loads((run / "metrics.json").read_text())
    for key in (
        "mu",
        "sigma",
        "mu_error",
        "sigma_error",
        "iterations",
        "wall_seconds",
        "preset",
        "scale",
        "standin_data",
        "config_hash",
        "provenance",
        "density_ratio",
    ):
        assert key in metrics
    assert metrics["iterations"] == 40 and metrics["scale"].startswith("reduced")
    rows = list(csv.DictReader((run / "trajectory.csv").open()))
    assert [int(r["step"]) for r in rows] == [10, 20, 30, 40]
    h = torch.load(run / "h.pt", weights_only=True)
    assert h["state_dict"]["2.weight"].shape == (64, 64)
    assert torch.load(study / "runs/cd/kl/seed0/h.pt", weights_only=True)["state_dict"] == {}


def test_every_run_record_states_its_identity_and_the_report_finds_its_study_there(study, tmp_path):
    """Completed and failed runs alike; the report's study labels read it, wherever the file lies."""
    from febm.reporting.labels import study_labels
    from tests.test_toy_failures import DIVERGING

    config = tmp_path / "diverging.yaml"
    config.write_text(yaml.safe_dump(DIVERGING))
    failed = tmp_path / "some" / "folder"
    args = ["toy-train", "--config", str(config), "--method", "mle", "--divergence", "kl", "--seed", "3",
            "--optimum", str(study / "opt/kl.json"), "--out-dir", str(failed), "--no-progress"]  # fmt: skip
    assert main(args) == 1
    completed = json.loads((study / "runs/cd/kl/seed0/metrics.json").read_text())
    record = json.loads((failed / "metrics.json").read_text())
    assert record["status"] == "failed"
    identity = ("study", "dataset", "method", "divergence", "seed")
    assert [completed[key] for key in identity] == ["toy", "mixture", "cd", "kl", 0]
    assert [record[key] for key in identity] == ["toy", "mixture", "mle", "kl", 3]
    # Put where a CIFAR-10 score would lie: still the toy's.
    moved = tmp_path / "results/images/scores/cifar10/febm/kl/seed0.json"
    moved.parent.mkdir(parents=True)
    moved.write_text(json.dumps(completed))
    labels = study_labels({"preset": "paper"}, [moved, failed / "metrics.json"])
    assert completed["scale"] in labels["toy"] and "smoke preset" in labels["toy"] and labels["cifar10"] == []


def test_rerun_resumes_from_the_finished_checkpoint(study):
    run = study / "runs/febm/kl/seed0"
    before = json.loads((run / "metrics.json").read_text())
    args = [
        "toy-train",
        "--config",
        str(study / "tiny.yaml"),
        "--method",
        "febm",
        "--divergence",
        "kl",
        "--seed",
        "0",
        "--optimum",
        str(study / "opt/kl.json"),
        "--out-dir",
        str(run),
        "--no-progress",
    ]
    assert main(args) == 0
    after = json.loads((run / "metrics.json").read_text())
    assert after["resumed_from_step"] == 40 and after["mu"] == before["mu"]


def test_table5(study):
    rows = read_results(study / "tables/table5.csv")  # the results schema, or an error
    # The report reads this table, so check the layout through it.
    estimates = {row.key: row.ours for row in our_rows(rows)}
    for method in ("optimum", "f-EBM", "contrastive_divergence", "mle"):
        assert {(method, "kl", "mu"), (method, "kl", "sigma")} <= set(estimates), method
    assert estimates[("f-EBM", "kl", "mu")].n == 2 and estimates[("f-EBM", "kl", "mu")].std is not None
    by_key = {(r.method, r.divergence, r.metric): r for r in rows}
    assert {d for m, d, _ in by_key if m == "f-EBM"} == {"kl", "reverse_kl"}
    assert by_key[("f-EBM", "kl", "mu")].n_runs == 2
    assert by_key[("f-EBM", "kl", "mu")].details["paper"] == "1.0154"
    assert by_key[("contrastive_divergence", "kl", "mu")].details["paper"] == "1.012"
    assert "paper" not in by_key[("mle", "kl", "mu")].details
    assert by_key[("optimum", "kl", "mu")].details["objective_value"]
    assert {(m, d) for m, d, _ in by_key if m == "stationary"} == {
        ("stationary", "kl"),
        ("stationary", "reverse_kl"),
    }


def test_stability_and_convergence(study):
    stability = json.loads((study / "stability/kl.json").read_text())
    assert stability["statement"] and len(stability["reduced_theta_eigenvalues"]) == 2
    rows = list(csv.DictReader((study / "conv/kl.csv").open()))
    assert {r["init"] for r in rows} == {"0", "1"}


def test_figures_are_written_as_png_and_pdf(study):
    for number in (1, 2, 3, 4):
        for suffix in (".png", ".pdf"):
            path = study / f"figures/figure{number}{suffix}"
            assert path.stat().st_size > 1000


def test_study_runs_every_stage_in_process(tmp_path):
    from febm.config import validate
    from febm.toy.study import run_study

    config = validate(json.loads(json.dumps(TINY)))
    config["toy"]["divergences"] = ["jensen_shannon"]
    config["toy"]["seeds"] = [0]
    summary = run_study(config, tmp_path, jobs=1)
    assert (tmp_path / "tables/table5.csv").exists() and (tmp_path / "figures/figure4.pdf").exists()
    assert (tmp_path / "toy/stability/jensen_shannon.json").exists()
    assert set(summary["accuracy"]) == {"febm/jensen_shannon", "cd/kl", "mle/kl"}


@pytest.mark.parametrize(
    ("overlay", "message"),
    [
        ({"toy": {"divergences": ["kullback"]}}, "toy.divergences"),
        ({"toy": {"mixture": {"weights": [0.5, 0.4], "means": [0, 1], "stds": [1, 1]}}}, "sum to 1"),
        (
            {"toy": {"mixture": {"weights": [0.5, 0.5], "means": [0, 1], "stds": [1, -1]}}},
            "stds must be positive",
        ),
    ],
)
def test_bad_config_is_a_one_line_error(tmp_path, capsys, overlay, message):
    config = tmp_path / "bad.yaml"
    config.write_text(yaml.safe_dump(overlay))
    code = main(
        ["toy-optimum", "--config", str(config), "--divergence", "kl", "--out", str(tmp_path / "o.json")]
    )
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1


def test_unknown_divergence_and_missing_optimum_are_one_line_errors(tmp_path, capsys):
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"preset": "smoke"}))
    assert (
        main(
            ["toy-optimum", "--config", str(config), "--divergence", "kullback", "--out", str(tmp_path / "o")]
        )
        == 2
    )
    assert "unknown divergence 'kullback'" in capsys.readouterr().err
    args = [
        "toy-train",
        "--config",
        str(config),
        "--method",
        "febm",
        "--divergence",
        "kl",
        "--seed",
        "0",
        "--optimum",
        str(tmp_path / "missing.json"),
        "--out-dir",
        str(tmp_path / "run"),
        "--no-progress",
    ]
    assert main(args) == 2
    assert "does not exist" in capsys.readouterr().err
