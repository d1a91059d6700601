"""Kill and resume through Snakemake: the controller is killed mid-run, the documented recovery
(`--unlock`, then `--rerun-incomplete`) finishes the target without recomputing finished jobs, and a
training job killed during the rerun is retried (`--retries`, `attempt`) and resumes from its checkpoint.

The job processes are real `febm` commands started by Snakemake; a `sitecustomize.py` on PYTHONPATH arms
the fault (tests/fault_injection.py) in every `febm` process, with the fault as JSON in FEBM_FAULT.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import types
from pathlib import Path

import torch
import yaml

from tests.test_faults_kill_resume import TOY_CONFIG, TOY_INTERVAL, tensors_equal, work_lost
from tests.test_faults_security import loaded_workflow  # noqa: F401  (a fixture)

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile")]
TARGET = "results/toy/runs/febm/kl/seed0/metrics.json"
OPTIMUM = "results/toy/optimum/kl.json"
SITECUSTOMIZE = f"""
import os, sys
if os.environ.get("FEBM_FAULT") and os.path.basename(sys.argv[0]) == "febm":
    sys.path.insert(0, {str(REPO)!r})
    from tests.fault_injection import install_from_environment
    install_from_environment()
"""


def _environment(tmp_path: Path, fault: dict) -> dict[str, str]:
    site = tmp_path / "site"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
    return {**os.environ, "PYTHONPATH": str(site), "OMP_NUM_THREADS": "1", "FEBM_FAULT": json.dumps(fault)}


def _snakemake(workdir: Path, config: Path, *args: str) -> list[str]:
    return [*SNAKEMAKE, "--directory", str(workdir), "--configfile", str(config), "--cores", "1", *args]


def kill_mid_run(workdir: Path, config: Path, fault: dict, tmp_path: Path) -> None:
    """Run the target until the job pauses (fault), then SIGKILL the controller, then the job."""
    marker = Path(fault["marker"])
    controller = subprocess.Popen(
        _snakemake(workdir, config, TARGET),
        env=_environment(tmp_path, fault),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 180
    while not marker.exists():
        assert controller.poll() is None, controller.stdout.read()[-4000:]
        assert time.monotonic() < deadline, "the job never reached the pause point"
        time.sleep(0.2)
    controller.kill()
    controller.wait(timeout=30)
    os.kill(int(marker.read_text()), signal.SIGKILL)
    assert list((workdir / ".snakemake" / "locks").iterdir()), "a killed controller leaves its lock"


def test_killed_controller_recovers_and_a_retried_job_resumes(tmp_path):
    workdir = tmp_path / "work"
    workdir.mkdir()
    config = tmp_path / "overlay.yaml"
    config.write_text(yaml.safe_dump({**TOY_CONFIG, "images": {"enabled": False}}))
    events = tmp_path / "events.jsonl"
    marker = tmp_path / "paused"

    # 1. The training job pauses after step 25 (checkpoint 20 written); then Snakemake is SIGKILLed, and the
    #    job with it (a node going down): no cleanup of any kind runs.
    pause = {"kind": "pause_at_step", "step": 25, "marker": str(marker), "events": str(events)}
    kill_mid_run(workdir, config, pause, tmp_path)
    optimum_mtime = (workdir / OPTIMUM).stat().st_mtime_ns  # finished before the kill
    assert not (workdir / TARGET).exists()

    # 2. The README's recovery: --unlock, then --rerun-incomplete. During the rerun the job is killed once
    #    more (after step 43, between checkpoints 40 and 50); Snakemake retries it (attempt 2).
    unlock = subprocess.run(
        _snakemake(workdir, config, "--unlock"), capture_output=True, text=True, timeout=120
    )
    assert unlock.returncode == 0, unlock.stderr[-3000:]
    fault = {"kind": "kill_at_step", "step": 43, "once": str(tmp_path / "fired"), "events": str(events)}
    rerun = subprocess.run(
        _snakemake(workdir, config, "--rerun-incomplete", "--retries", "1", TARGET),
        env=_environment(tmp_path, fault),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert rerun.returncode == 0, rerun.stderr[-4000:]
    assert (tmp_path / "fired").exists(), "the fault never fired, so no retry was exercised"
    assert "toy_optimum" not in rerun.stderr and (workdir / OPTIMUM).stat().st_mtime_ns == optimum_mtime

    recorded = [json.loads(line) for line in events.read_text().splitlines()]
    starts = [event["step"] for event in recorded if event["event"] == "start"]
    assert starts == [0, 20, 40], recorded  # first run, rerun after the controller kill, retry (attempt 2)
    kills = work_lost(
        [{**e, "event": "kill", "point": "paused"} if e["event"] == "pause" else e for e in recorded]
    )
    assert [(k["reached"], k["resumed_from"]) for k in kills] == [(25, 20), (43, 40)]
    assert all(kill["lost"] <= TOY_INTERVAL for kill in kills)
    print("\nworkflow work lost per kill:", json.dumps(kills))

    # 3. The result equals an uninterrupted run of the same command with the workflow's resolved config.
    from febm.config import load_config
    from febm.toy.runs import run_training

    resolved = load_config([workdir / "results" / "config" / "resolved.yaml"])
    reference = tmp_path / "reference"
    threads = torch.get_num_threads()
    try:
        straight = run_training(resolved, "febm", "kl", 0, workdir / OPTIMUM, reference, progress=False)
    finally:
        torch.set_num_threads(threads)  # run_training sets toy.threads for the whole process
    run_dir = (workdir / TARGET).parent
    resumed = json.loads((workdir / TARGET).read_text())
    assert resumed["resumed_from_step"] == 40
    for key in ("mu", "sigma", "mu_last_iterate", "sigma_last_iterate"):
        assert resumed[key] == straight[key], key
    assert (run_dir / "trajectory.csv").read_text() == (reference / "trajectory.csv").read_text()
    assert tensors_equal(
        torch.load(run_dir / "h.pt", weights_only=True), torch.load(reference / "h.pt", weights_only=True)
    )


def test_retries_get_more_time_and_resume_from_undeclared_checkpoints(loaded_workflow):  # noqa: F811
    """A job that hits its time limit is resubmitted with attempt + 1: more runtime, same command, and its
    checkpoints are not declared outputs, so Snakemake (which deletes a failed job's outputs) keeps them."""
    profile = yaml.safe_load((REPO / "profiles" / "slurm" / "profile.yaml").read_text())
    assert profile["retries"] >= 1 and profile["rerun-incomplete"] is True

    def runtime(rule: str, attempt: int) -> float:
        value = profile["set-resources"].get(rule, {}).get("runtime", profile["default-resources"]["runtime"])
        return eval(
            str(value), {"__builtins__": {}}, {"attempt": attempt}
        )  # the plugin evaluates it the same way

    for rule in ("train_images", "toy_train", "sample_images", "score_images", "fid_stats"):
        assert runtime(rule, 1) < runtime(rule, 2) < runtime(rule, 3), rule

    rules = {rule.name: rule for rule in loaded_workflow.rules}
    train = rules["train_images"]
    outputs = [str(output) for output in train.output]
    checkpoint_dir = train.params.get("checkpoint_dir")(
        types.SimpleNamespace(dataset="cifar10", image_method="febm", image_divergence="kl", seed="0")
    )
    # resources/checkpoints/<run>/<resume key> (resources/standin/... for stand-in data, kept apart)
    assert re.fullmatch(
        r"resources/(standin/)?checkpoints/cifar10/febm/kl/seed0/[0-9a-f]{12}", checkpoint_dir
    )
    assert "--checkpoint-dir" in train.shellcmd
    assert not any(
        output.startswith(checkpoint_dir) or checkpoint_dir.startswith(output) for output in outputs
    )
    # The 1-D state lives in <run dir>/checkpoints/<settings key>/, beside (not among) the job's outputs.
    toy_outputs = [str(output) for output in rules["toy_train"].output]
    assert toy_outputs and not any("checkpoints" in output or "state_" in output for output in toy_outputs)


def test_outputs_finished_behind_a_killed_controllers_back_are_redone_without_retraining(tmp_path):
    """The job wrote all its outputs, but the controller died before recording that: Snakemake marks them
    incomplete (README: IncompleteFilesException), `--rerun-incomplete` redoes the job, which resumes from
    its final checkpoint, so no training step is repeated."""
    workdir = tmp_path / "work"
    workdir.mkdir()
    config = tmp_path / "overlay.yaml"
    config.write_text(yaml.safe_dump({**TOY_CONFIG, "images": {"enabled": False}}))
    events = tmp_path / "events.jsonl"
    fault = {"kind": "pause_after_write", "name": "metrics.json", "marker": str(tmp_path / "paused"),
             "events": str(events)}  # fmt: skip
    kill_mid_run(workdir, config, fault, tmp_path)
    assert (workdir / TARGET).is_file()  # complete on disk, unknown to Snakemake
    optimum_mtime = (workdir / OPTIMUM).stat().st_mtime_ns

    assert (
        subprocess.run(_snakemake(workdir, config, "--unlock"), capture_output=True, timeout=120).returncode
        == 0
    )
    plain = subprocess.run(_snakemake(workdir, config, TARGET), capture_output=True, text=True, timeout=120)
    assert plain.returncode != 0 and "IncompleteFilesException" in plain.stderr, plain.stderr[-3000:]
    rerun = subprocess.run(
        _snakemake(workdir, config, "--rerun-incomplete", TARGET), capture_output=True, text=True, timeout=300
    )
    assert rerun.returncode == 0, rerun.stderr[-4000:]
    assert "toy_train" in rerun.stderr and (workdir / OPTIMUM).stat().st_mtime_ns == optimum_mtime
    metrics = json.loads((workdir / TARGET).read_text())
    assert metrics["resumed_from_step"] == metrics["iterations"] == TOY_CONFIG["toy"]["train"]["iterations"]
