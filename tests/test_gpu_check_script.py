"""benchmarks/gpu_check.py: its quick CPU code path, its JSON, and the no-CUDA exit.

The GPU measurements themselves need a GPU; here the script runs at width 8, batch 4, 2 Langevin steps
(``--device cpu --quick``) so every part of the code path except torch.compile and DDP runs."""

from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from febm.config import load_config

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "gpu_check.py"


@pytest.fixture(scope="module")
def gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_check"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop("gpu_check", None)


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory) -> tuple[dict, dict]:
    out = tmp_path_factory.mktemp("gpu_check") / "gpu_check.json"
    completed = subprocess.run(
        [sys.executable, str(SCRIPT), "--device", "cpu", "--quick", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    printed = json.loads(completed.stdout)  # stdout is exactly one JSON object
    return printed, json.loads(out.read_text())


def test_quick_cpu_run_prints_every_part(quick_run):
    printed, written = quick_run
    assert printed == written
    assert printed["cuda"] is False and printed["measured"] is True and printed["scale"].startswith("quick")
    assert {"torch_version", "cuda_version", "name"} <= set(printed["device"])
    assert printed["settings"]["width"] == 8 and printed["settings"]["batch"] == 4
    for dtype in ("float32", "bf16"):
        assert printed["matmul"][dtype]["median_flops_per_second"] > 0
    eager = ["float32", "float32_channels_last", "bf16", "bf16_channels_last"]
    assert set(printed["iteration"]) == {*eager, "bf16_channels_last_compile"}
    for name in eager:
        variant = printed["iteration"][name]
        assert variant["febm"]["median_seconds"] > 0, name
        assert len(variant["febm"]["seconds"]) == printed["settings"]["timed"]
        langevin = variant["langevin_train_batch"]
        assert langevin["flops_per_second"] == pytest.approx(
            langevin["flops_per_step"] / langevin["seconds_per_step"]
        )
        # FLOPs are counted, so they grow with the batch: the evaluation batch is twice the training one.
        assert variant["langevin_eval_batch"]["flops_per_step"] == pytest.approx(
            2 * langevin["flops_per_step"]
        )
    assert "of_bf16_matmul" in printed["iteration"]["bf16"]["langevin_train_batch"]["fraction"]
    assert "of_float32_matmul" in printed["iteration"]["float32"]["langevin_train_batch"]["fraction"]
    configured = printed["iteration"]["float32"]  # the config's precision and layout
    assert (
        configured["cd"]["median_seconds"] > 0 and configured["febm_two_sampler_runs"]["median_seconds"] > 0
    )
    assert "skipped" in printed["iteration"]["bf16_channels_last_compile"]
    assert "skipped" in printed["ddp"]
    assert printed["langevin_bf16_fraction_of_bf16_matmul"]["target"] == 0.4
    assert isinstance(printed["langevin_bf16_target_met"], bool)
    assert set(printed["peak_memory_mb"]) == set(printed["iteration"])


def test_projection_follows_the_config_grid(quick_run):
    printed, _ = quick_run
    config = load_config([REPO / "config" / "config.yaml"])
    protocol = config["evaluation"]["paper_protocol"]
    steps = (
        math.ceil(config["evaluation"]["num_samples"] / protocol["chains_per_round"])
        * protocol["calls_per_round"]
        * protocol["steps_per_call"]
    )
    projection = printed["projection"]["as_configured"]
    assert projection["variant"] == "float32"
    seconds = projection["iteration_seconds"]
    assert projection["evaluation_per_run"]["langevin_steps"] == steps
    for table, dataset in (("table1", "cifar10"), ("table2", "celeba32")):
        entry = projection[table]
        febm_runs = len(config["images"]["divergences"]) * len(config["images"]["seeds"])
        assert entry["runs_by_method"] == {"cd": len(config["images"]["seeds"]), "febm": febm_runs}
        iterations = config["images"][dataset]["training"]["iterations"]
        assert entry["iterations_per_run"] == iterations
        hours = entry["febm"]
        expected = iterations * (febm_runs * seconds["febm"] + seconds["cd"]) / 3600
        assert hours["training_gpu_hours_1_gpu_batch"] == pytest.approx(expected)
        assert hours["training_gpu_hours_4x_batch_ddp"] == pytest.approx(4 * expected)  # efficiency 1 assumed
        # Stopping at the released checkpoints (45,900-79,300) is cheaper than the configured 80,000.
        assert hours["training_gpu_hours_1_gpu_stop_at_released_checkpoints"] < expected
        assert hours["total_gpu_hours_1_gpu_batch"] == pytest.approx(expected + entry["evaluation_gpu_hours"])
    assert printed["projected_gpu_hours"]["as_configured:float32"]["table1"]["1_gpu_batch"] > 0


def test_without_cuda_it_stops_at_once_with_one_line(gpu_check, monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    out = tmp_path / "gpu_check.json"
    assert gpu_check.main(["--out", str(out)]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "no CUDA GPU visible" in lines[0] and "--device cpu --quick" in lines[0]
    record = json.loads(captured.out)
    assert record["cuda"] is False and record["measured"] is False
    assert json.loads(out.read_text()) == record


def test_cpu_without_quick_is_refused(gpu_check, capsys):
    assert gpu_check.main(["--device", "cpu"]) == 2
    assert "--quick" in capsys.readouterr().err
