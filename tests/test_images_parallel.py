"""training.parallel: the global batch as K processes x batch_size, made by torchrun (K processes, one buffer
each, gradients averaged) or in one process (K x batch_size images, K x capacity chains), and recorded in
metrics.json. Tiny stand-in runs on CPU; torchrun's processes talk over gloo."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import yaml

from febm.cli import main
from tests.test_images_training import _config


def _write_config(tmp_path: Path, processes: int, launch: str, preset: str = "smoke") -> Path:
    config = _config(iterations=3, preset=preset, parallel={"processes": processes, "launch": launch})
    config["workflow"]["allow_cpu_paper_scale"] = True  # the paper preset, tiny, on this CPU
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _arguments(config: Path, data: Path, out: Path) -> list[str]:
    return [
        "train-images", "--config", str(config), "--dataset", "cifar10", "--method", "febm",
        "--divergence", "kl", "--seed", "0", "--data", str(data), "--out-dir", str(out / "out"),
        "--checkpoint-dir", str(out / "ckpt"),
    ]  # fmt: skip


def test_one_process_holds_k_processes_worth_of_batch_and_chains(cifar10_standin_npz, tmp_path):
    config = _write_config(tmp_path, processes=3, launch="one_process")
    assert main(_arguments(config, cifar10_standin_npz, tmp_path)) == 0
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["parallel"] == {
        "launch": "one_process", "processes": 3, "world_size": 1, "batch_per_process": 24,
        "global_batch": 24, "replay_chains": 192,
    }  # fmt: skip
    assert "global batch 24 (1 process(es) x 24)" in metrics["scale"]
    with np.load(tmp_path / "out" / "replay.npz") as replay:
        # one iteration after the warm-up adds one batch: 24 chains (one process of 8 would add 8)
        assert len(replay["images"]) == 24


def test_torchrun_settings_without_torchrun_stop_a_paper_run_and_warn_elsewhere(
    cifar10_standin_npz, tmp_path, capsys
):
    config = _write_config(tmp_path, processes=2, launch="torchrun", preset="paper")
    assert main(_arguments(config, cifar10_standin_npz, tmp_path)) == 2
    error = capsys.readouterr().err.strip()
    assert "parallel is 2 process(es) with launch torchrun, but this run has 1" in error, error
    assert "torchrun --standalone --nproc_per_node=2" in error and "\n" not in error
    assert not (tmp_path / "out" / "metrics.json").exists()

    config = _write_config(tmp_path, processes=2, launch="torchrun")  # smoke: runs, says so, records it
    assert main(_arguments(config, cifar10_standin_npz, tmp_path)) == 0
    assert "warning: images.cifar10.training.parallel is 2 process(es)" in capsys.readouterr().err
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["parallel"]["world_size"] == 1 and metrics["parallel"]["global_batch"] == 8


def test_torchrun_runs_k_processes_with_one_buffer_each(cifar10_standin_npz, tmp_path):
    config = _write_config(tmp_path, processes=2, launch="torchrun")
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "febm",
    ]
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    finished = subprocess.run(
        [*command, *_arguments(config, cifar10_standin_npz, tmp_path)],
        capture_output=True, text=True, timeout=300, env=environment,
    )  # fmt: skip
    assert finished.returncode == 0, finished.stderr[-3000:]
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["world_size"] == 2 and metrics["parallel"]["global_batch"] == 16
    assert metrics["parallel"]["replay_chains"] == 128 and metrics["parallel"]["batch_per_process"] == 8
    # every rank checkpointed its own state (its buffer and generator)
    assert {path.name.split("_")[-1] for path in (tmp_path / "ckpt").rglob("*.pt")} >= {
        "rank0.pt",
        "rank1.pt",
    }
