"""Issue 14, item 3: a failed 1-D run is recorded, counted in Table 5, and still fails the workflow."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from febm.cli import main
from febm.config import validate
from febm.reporting.tables import our_rows, read_ours
from febm.results_schema import read_results, write_results
from febm.toy.runs import run_stability
from febm.toy.table import build_table5

REPO = Path(__file__).resolve().parent.parent
PAPER = "febm/data/reported_results.csv"
# sigma starts far too wide and Adam's first E step (about e_lr) takes it below 0: every method diverges
# at its first energy update, deterministically and within a few steps.
DIVERGING = {
    "preset": "smoke",
    "images": {"enabled": False},
    "toy": {
        "divergences": ["kl"],
        "seeds": [0],
        "train": {
            "iterations": 30,
            "e_lr": 20.0,
            "init_sigma": 10.0,
            "warmup_iterations": 1,
            "h_warmup_iterations": 2,
            "batch_size": 100,
            "model_batch_size": 100,
            "log_every": 10,
            "checkpoint_every": 10,
        },
    },
}

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def write_run(folder: Path, seed: int, mu: float | None, sigma: float | None, error: str = "") -> Path:
    folder.mkdir(parents=True)
    record = {"method": "febm", "divergence": "kl", "seed": seed, "mu": mu, "sigma": sigma}
    record.update({"status": "failed", "error": error} if error else {"status": "completed"})
    (folder / "metrics.json").write_text(json.dumps(record))
    return folder


@pytest.fixture
def runs_with_one_failure(tmp_path):
    optimum = tmp_path / "kl.json"
    optimum.write_text(json.dumps({"divergence": "kl", "mu": 1.01, "sigma": 1.83, "divergence_value": 0.29}))
    runs = [
        write_run(tmp_path / "seed0", 0, 1.00, 1.80),
        write_run(tmp_path / "seed1", 1, None, None, "loss term 'bound' is -inf at step 7"),
        write_run(tmp_path / "seed2", 2, 1.02, 1.84),
    ]
    return optimum, runs


def test_table5_averages_the_converged_seeds_and_counts_the_failed_one(runs_with_one_failure, tmp_path):
    optimum, runs = runs_with_one_failure
    rows = {(r.method, r.metric): r for r in build_table5([optimum], runs, PAPER)}
    assert set(rows) == {(m, metric) for m in ("optimum", "f-EBM") for metric in ("mu", "sigma")}
    mu, sigma = rows[("f-EBM", "mu")], rows[("f-EBM", "sigma")]
    assert mu.mean == pytest.approx(1.01) and sigma.mean == pytest.approx(1.82)
    assert (mu.n_runs, mu.n, mu.details["converged"]) == (3, 2, "2/3")
    assert mu.details["failures"] == "seed1: loss term 'bound' is -inf at step 7"
    assert mu.details["per_seed"].split()[1] == "seed1=failed"
    # The report reads the counts from the written file: the mean is over n = 2, and the row says 2/3.
    assert main(["toy-table", "--config", str(write_config(tmp_path, {})), "--optima", str(optimum), "--runs",
                 *map(str, runs), "--paper", PAPER, "--out", str(tmp_path / "table5.csv")]) == 0  # fmt: skip
    estimate = {r.key: r for r in our_rows(read_ours(tmp_path / "table5.csv"))}[("f-EBM", "kl", "mu")]
    assert estimate.ours.n == 2 and estimate.details["converged"] == "2/3"


def test_a_group_whose_every_run_failed_is_still_a_line_of_the_report(runs_with_one_failure, tmp_path):
    optimum, _ = runs_with_one_failure
    failed = [write_run(tmp_path / "all_failed" / f"seed{s}", s, None, None, "diverged") for s in (0, 1)]
    write_results(build_table5([optimum], failed, PAPER), tmp_path / "table5.csv")
    estimate = {r.key: r for r in our_rows(read_ours(tmp_path / "table5.csv"))}[("f-EBM", "kl", "mu")]
    assert estimate.ours.n == 0 and estimate.details["converged"] == "0/2"


def write_config(folder: Path, overlay: dict) -> Path:
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(overlay))
    return path


def test_toy_check_names_the_failed_runs_and_passes_when_none_failed(runs_with_one_failure, tmp_path, capsys):
    _, runs = runs_with_one_failure
    out = tmp_path / "check.json"
    assert main(["toy-check", "--runs", *map(str, runs), "--out", str(out)]) == 2
    message = capsys.readouterr().err
    assert "1 of 3 toy runs failed" in message and "febm/kl/seed1: loss term 'bound' is -inf" in message
    assert not out.exists()
    assert main(["toy-check", "--runs", str(runs[0]), str(runs[2]), "--out", str(out)]) == 0
    assert json.loads(out.read_text())["failed"] == 0


def test_stability_of_a_divergence_whose_runs_all_failed_is_a_statement_not_a_crash(tmp_path):
    optimum = tmp_path / "kl.json"
    optimum.write_text(json.dumps({"divergence": "kl", "mu": 1.01, "sigma": 1.83, "divergence_value": 0.29}))
    run = write_run(tmp_path / "seed0", 0, None, None, "energy parameters became invalid at step 3")
    result = run_stability(validate({"preset": "smoke"}), "kl", optimum, [run], tmp_path / "stability.json")
    assert result["status"] == "no converged run" and "all 1 f-EBM runs on kl failed" in result["statement"]


def test_a_diverging_run_writes_a_failure_record_and_the_exit_status_says_so(tmp_path):
    config = write_config(tmp_path, DIVERGING)
    optimum = tmp_path / "kl.json"
    optimum.write_text(json.dumps({"divergence": "kl", "mu": 1.01, "sigma": 1.83, "divergence_value": 0.29}))
    args = ["toy-train", "--config", str(config), "--method", "mle", "--divergence", "kl", "--seed", "0",
            "--optimum", str(optimum), "--no-progress"]  # fmt: skip
    assert main([*args, "--out-dir", str(tmp_path / "plain")]) == 1
    assert main([*args, "--out-dir", str(tmp_path / "workflow"), "--allow-failure"]) == 0
    for folder in ("plain", "workflow"):
        record = json.loads((tmp_path / folder / "metrics.json").read_text())
        assert record["status"] == "failed" and record["failed_at_step"] == 0
        assert "energy parameters became invalid at step 0" in record["error"] and record["mu"] is None
        assert (tmp_path / folder / "trajectory.csv").exists() and (tmp_path / folder / "h.pt").exists()


def test_snakemake_table5_keep_going_writes_the_table_and_exits_nonzero(tmp_path):
    """The runs are trained in this process (as the workflow's toy_train would, ~3 s instead of a minute of
    process start-ups on two shared cores); Snakemake then only builds the table and the check."""
    overlay = write_config(tmp_path, DIVERGING)
    results = tmp_path / "results/toy"
    optimum = str(results / "optimum/kl.json")
    assert main(["toy-optimum", "--config", str(overlay), "--divergence", "kl", "--out", optimum]) == 0
    for method in ("febm", "cd", "mle"):
        assert main(["toy-train", "--config", str(overlay), "--method", method, "--divergence", "kl", "--seed",
                     "0", "--optimum", optimum, "--out-dir", str(results / f"runs/{method}/kl/seed0"),
                     "--no-progress", "--allow-failure"]) == 0  # fmt: skip
    args = [
        "--snakefile",
        str(REPO / "Snakefile"),
        "--directory",
        str(tmp_path),
        "--configfile",
        str(overlay),
    ]
    # A separate process: Snakemake's in-process runner inherits the suite's replaced std streams.
    finished = subprocess.run(
        [sys.executable, "-m", "snakemake", *args, "--cores", "2", "--keep-going", "table5"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    status, output = finished.returncode, finished.stdout + finished.stderr
    assert status != 0, output
    assert "rule toy_train" not in output and "rule toy_optimum" not in output  # only the table and the check
    learned = [r for r in read_results(tmp_path / "results/tables/table5.csv") if r.n_runs is not None]
    assert {r.method for r in learned} == {"f-EBM", "contrastive_divergence", "mle"}
    assert all(
        r.details["converged"] == "0/1" and "energy parameters became invalid" in r.details["failures"]
        for r in learned
    )
    assert not (tmp_path / "results/toy/check.json").exists()
    assert "3 of 3 toy runs failed" in (tmp_path / "results/logs/toy_check/runs.log").read_text()
    assert "3 of 3 toy runs failed" in output  # named in the workflow's own output too


def test_a_nan_loss_is_a_failure_record_whose_message_says_what_to_change(tmp_path):
    """Not bad input but a run that diverged: exit 1 (0 under the workflow) and the reason in metrics.json."""
    overlay = {"preset": "smoke", "images": {"enabled": False},
               "toy": {"divergences": ["pearson_x2"], "seeds": [0],
                       "train": {"iterations": 30, "batch_size": 50, "model_batch_size": 50, "hidden_units": 8,
                                 "checkpoint_every": 10, "warmup_iterations": 5, "h_warmup_iterations": 5,
                                 "init_sigma": 0.02, "conjugate_cap": None, "exp_clamp": None}}}  # fmt: skip
    config = write_config(tmp_path, overlay)
    optimum = tmp_path / "pearson_x2.json"
    assert (
        main(["toy-optimum", "--config", str(config), "--divergence", "pearson_x2", "--out", str(optimum)])
        == 0
    )
    args = ["toy-train", "--config", str(config), "--method", "febm", "--divergence", "pearson_x2", "--seed", "0",
            "--optimum", str(optimum), "--no-progress", "--out-dir", str(tmp_path / "run")]  # fmt: skip
    assert main(args) == 1
    record = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert record["status"] == "failed"
    assert re.search(r"pearson_x2.*\b(nan|inf|not finite|invalid)\b.* at step \d+", record["error"]), record
    assert re.search(r"\blower (the learning rate|toy\.train)", record["error"]), record
