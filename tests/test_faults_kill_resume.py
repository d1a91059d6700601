"""Kill and resume at the command line: SIGKILL `febm toy-train` and `febm train-images` at several points,
including while a checkpoint is being written, rerun the same command, and check that each rerun resumes
from the last complete checkpoint, that a damaged newest checkpoint falls back to the previous one, and
that the final result is bit-identical (CPU) to an uninterrupted run.

Each run is a real process running the real command (`febm.cli.main`) that kills itself with SIGKILL at
the chosen point (tests/fault_injection.py). The processes are forked from one zygote that imports torch
once, so the chain of runs costs seconds, not one interpreter start per kill.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from febm.config import deep_merge

REPO = Path(__file__).resolve().parents[1]
KILLED = -signal.SIGKILL

TOY_CONFIG = {
    "preset": "smoke",
    "toy": {
        "divergences": ["kl"],
        "seeds": [0],
        "train": {
            "iterations": 60,
            "batch_size": 50,
            "model_batch_size": 50,
            "hidden_units": 8,
            "checkpoint_every": 10,
            "log_every": 5,
            "warmup_iterations": 5,
            "h_warmup_iterations": 5,
        },
    },
}
TOY_INTERVAL = TOY_CONFIG["toy"]["train"]["checkpoint_every"]

IMAGE_CONFIG = {
    "preset": "smoke",
    "images": {
        "standin_data": True,
        "datasets": ["cifar10"],
        "cifar10": {
            "network": {"num_filters": 4},
            "training": {
                "iterations": 6,
                "batch_size": 4,
                "warmup_iterations": 1,
                "checkpoint_interval": 2,
                "keep_checkpoints": 2,
                "sample_interval": 2,
            },
            "sampler": {"steps": 2},
            "replay": {"capacity": 16},
        },
    },
    "evaluation": {"checkpoint_selection": "final"},  # best-IS: tests/test_best_checkpoint.py
}
IMAGE_INTERVAL = IMAGE_CONFIG["images"]["cifar10"]["training"]["checkpoint_interval"]


class Zygote:
    """`python -m tests.fault_injection serve`: forks one febm run per request."""

    def __init__(self) -> None:
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.fault_injection", "serve"],
            cwd=REPO,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def run(self, argv: list[str], cwd: Path, log: Path, fault: dict[str, Any] | None = None) -> int:
        request = {"argv": argv, "cwd": str(cwd), "log": str(log), "fault": fault}
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        answer = self.process.stdout.readline()
        assert answer, f"the zygote died; log:\n{log.read_text()[-3000:] if log.exists() else ''}"
        return json.loads(answer)["status"]

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=30)


@pytest.fixture(scope="module")
def zygote():
    server = Zygote()
    yield server
    server.close()


def read_events(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def work_lost(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per kill: the step reached, the step the next run started from, and the steps redone."""
    kills = []
    for index, event in enumerate(events):
        if event["event"] != "kill":
            continue
        restart = next(e for e in events[index + 1 :] if e["event"] == "start")
        kills.append(
            {
                "point": event["point"],
                "reached": event["step"],
                "resumed_from": restart["step"],
                "lost": event["step"] - restart["step"],
            }
        )
    return kills


def temporaries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*.tmp"))


def tensors_equal(a: Any, b: Any) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(tensors_equal(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(tensors_equal(x, y) for x, y in zip(a, b, strict=True))
    return a == b


# --- the 1-D study -------------------------------------------------------------------------------


def test_toy_training_survives_sigkill_anywhere_and_ends_bit_identical(zygote, tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(TOY_CONFIG))
    optimum = tmp_path / "optimum" / "kl.json"
    log = tmp_path / "log.txt"
    status = zygote.run(
        ["toy-optimum", "--config", str(config), "--divergence", "kl", "--out", str(optimum)], tmp_path, log
    )
    assert status == 0, log.read_text()[-3000:]

    def train(out_dir: Path, fault: dict | None = None) -> int:
        argv = ["toy-train", "--config", str(config), "--method", "febm", "--divergence", "kl", "--seed", "0"]
        argv += ["--optimum", str(optimum), "--out-dir", str(out_dir), "--no-progress"]
        return zygote.run(argv, tmp_path, log, {**(fault or {}), "events": str(tmp_path / "events.jsonl")})

    reference, run = tmp_path / "reference", tmp_path / "run"
    assert train(reference) == 0, log.read_text()[-3000:]
    (tmp_path / "events.jsonl").unlink()

    def state_dirs() -> list[Path]:  # <run>/checkpoints/<settings key>: one per settings the run was given
        return sorted((run / "checkpoints").iterdir())

    def saved() -> list[int]:
        (folder,) = state_dirs()
        return sorted(int(p.name[6:14]) for p in folder.glob("state_*_rank0.pt"))

    # 1. Between checkpoints: the 3 steps after checkpoint 20 are redone.
    assert train(run, {"kind": "kill_at_step", "step": 23}) == KILLED
    assert saved() == [10, 20]  # the two newest are kept
    # 2. Checkpoint 30 complete in its temporary file, not yet renamed: the newest complete one is 20.
    assert train(run, {"kind": "kill_before_rename", "nth": 1}) == KILLED
    assert temporaries(run) and saved() == [10, 20]
    # 3. Half of checkpoint 40 written (30 was completed by this run, 10 pruned).
    assert train(run, {"kind": "kill_mid_write", "nth": 2}) == KILLED
    assert saved() == [20, 30]
    # 4. Right after checkpoint 40 is renamed into place (before 20 is pruned).
    assert train(run, {"kind": "kill_after_rename", "nth": 1}) == KILLED
    assert saved() == [20, 30, 40]
    # 5. Between checkpoints again, then the newest checkpoint (40) is damaged on disk: cut in half.
    assert train(run, {"kind": "kill_at_step", "step": 47}) == KILLED
    (folder,) = state_dirs()
    newest = folder / "state_00000040_rank0.pt"
    data = newest.read_bytes()
    newest.write_bytes(data[: len(data) // 2])
    assert train(run) == 0, log.read_text()[-3000:]
    assert "unreadable" in log.read_text()  # the damaged file was detected, the previous one used

    events = read_events(tmp_path / "events.jsonl")
    kills = work_lost(events)
    assert [(k["reached"], k["resumed_from"]) for k in kills] == [
        (23, 20),
        (30, 20),
        (40, 30),
        (40, 40),
        (47, 30),
    ]
    for kill in kills[:4]:  # a kill never costs more than one checkpoint interval
        assert 0 <= kill["lost"] <= TOY_INTERVAL, kill
    # A newest checkpoint damaged after the fact costs at most one more interval (the previous one is used).
    assert kills[4]["lost"] <= 2 * TOY_INTERVAL
    print("\ntoy work lost per kill:", json.dumps(kills))

    resumed = json.loads((run / "metrics.json").read_text())
    straight = json.loads((reference / "metrics.json").read_text())
    assert resumed["resumed_from_step"] == 30 and straight["resumed_from_step"] == 0
    for key in ("mu", "sigma", "mu_last_iterate", "sigma_last_iterate", "steps_to_accuracy", "density_ratio"):
        assert resumed[key] == straight[key], key
    assert (run / "trajectory.csv").read_text() == (reference / "trajectory.csv").read_text()
    assert tensors_equal(
        torch.load(run / "h.pt", weights_only=True), torch.load(reference / "h.pt", weights_only=True)
    )
    assert temporaries(run) == []  # every temporary file of a killed writer was cleaned up
    assert (folder / "state_00000040_rank0.pt.damaged").is_file()  # set aside; 40 was written afresh
    assert saved() == [50, 60]
    umask = os.umask(0o022)
    os.umask(umask)
    assert (run / "metrics.json").stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's owner-only 0600

    # A config edit (Snakemake reruns the job, the undeclared checkpoints stay): the new settings get their
    # own checkpoint folder, so the finished run of the old settings is not passed off as the new result.
    edited = deep_merge(TOY_CONFIG, {"toy": {"train": {"h_lr": 0.001}}})
    config.write_text(yaml.safe_dump(edited))
    assert train(run) == 0, log.read_text()[-3000:]
    retrained = json.loads((run / "metrics.json").read_text())
    assert retrained["resumed_from_step"] == 0 and retrained["settings"]["h_lr"] == 0.001
    assert (retrained["mu"], retrained["sigma"]) != (straight["mu"], straight["sigma"])
    old, new = sorted(state_dirs(), key=lambda path: path != folder)
    assert old == folder and new != folder
    # A state of other settings moved into the folder by hand is refused, naming the folder and the fix.
    shutil.copy(folder / "state_00000060_rank0.pt", new / "state_00000060_rank0.pt")
    assert train(run) == 2
    message = log.read_text().strip().splitlines()[-1]
    assert message.startswith("febm toy-train: error: the checkpoints in") and str(new) in message
    assert "other settings" in message and "use another --out-dir or delete that folder" in message
    # Switching the setting back finds the old folder again: its finished state, nothing retrained.
    config.write_text(yaml.safe_dump(TOY_CONFIG))
    assert train(run) == 0, log.read_text()[-3000:]
    back = json.loads((run / "metrics.json").read_text())
    assert back["resumed_from_step"] == 60 and (back["mu"], back["sigma"]) == (
        straight["mu"],
        straight["sigma"],
    )


# --- the image study -----------------------------------------------------------------------------


def _log_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(handle)]


def test_image_training_survives_sigkill_anywhere_and_ends_bit_identical(
    zygote, tmp_path, cifar10_standin_npz
):
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(IMAGE_CONFIG))
    log = tmp_path / "log.txt"
    events = tmp_path / "events.jsonl"

    def train(name: str, fault: dict | None = None) -> int:
        argv = ["train-images", "--config", str(config), "--dataset", "cifar10", "--method", "febm"]
        argv += ["--divergence", "jensen_shannon", "--seed", "0", "--data", str(cifar10_standin_npz)]
        argv += ["--out-dir", str(tmp_path / name / "out"), "--checkpoint-dir", str(tmp_path / name / "ckpt")]
        return zygote.run(argv, tmp_path, log, {**(fault or {}), "events": str(events)})

    assert train("reference") == 0, log.read_text()[-3000:]
    events.unlink()
    ckpt = tmp_path / "run" / "ckpt"

    def saved() -> list[int]:
        return sorted(int(p.name[6:14]) for p in ckpt.glob("state_*_rank0.pt"))

    assert train("run", {"kind": "kill_at_step", "step": 3}) == KILLED
    assert saved() == [2]
    assert train("run", {"kind": "kill_before_rename", "nth": 1}) == KILLED  # state 4 complete, not renamed
    assert saved() == [2] and temporaries(ckpt)
    assert train("run", {"kind": "kill_mid_write", "nth": 1}) == KILLED  # state 4 half written
    assert saved() == [2]
    assert train("run", {"kind": "kill_after_rename", "nth": 1}) == KILLED  # state 4 in place, 2 not pruned
    assert saved() == [2, 4]
    assert train("run", {"kind": "kill_at_step", "step": 5}) == KILLED
    # The newest state is damaged on disk, and the live log ends in half a row (a buffer flushed mid-line
    # when the process died): the previous state is used and the broken row dropped.
    newest = ckpt / "state_00000004_rank0.pt"
    newest.write_bytes(newest.read_bytes()[:1000])
    with (ckpt / "train_log.csv").open("a") as handle:
        handle.write("1")
    assert train("run") == 0, log.read_text()[-3000:]
    assert "trying an older checkpoint" in log.read_text()

    kills = work_lost(read_events(events))
    assert [(k["reached"], k["resumed_from"]) for k in kills] == [(3, 2), (4, 2), (4, 2), (4, 4), (5, 2)]
    for kill in kills[:4]:
        assert 0 <= kill["lost"] <= IMAGE_INTERVAL, kill
    assert kills[4]["lost"] <= 2 * IMAGE_INTERVAL  # damaged newest state: one more interval at most
    print("\nimage work lost per kill:", json.dumps(kills))

    run, reference = tmp_path / "run" / "out", tmp_path / "reference" / "out"
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["resumed_from_iteration"] == 2 and metrics["iterations"] == 6
    model, straight = (torch.load(d / "model.pt", weights_only=True) for d in (run, reference))
    assert tensors_equal(model["state_dict"], straight["state_dict"])
    assert _log_rows(run / "train_log.csv") == _log_rows(reference / "train_log.csv")
    final = [
        torch.load(d / "state_00000006_rank0.pt", weights_only=True)
        for d in (ckpt, reference.parent / "ckpt")
    ]
    assert tensors_equal(final[0], final[1])  # networks, optimisers, replay buffer, RNG state
    assert temporaries(tmp_path / "run") == []
