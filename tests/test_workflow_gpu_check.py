"""workflow/scripts/check_gpu.py: paper-scale image training stops at once without a GPU."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch
import yaml

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def check_gpu():
    spec = importlib.util.spec_from_file_location("check_gpu", REPO / "workflow" / "scripts" / "check_gpu.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run(check_gpu, tmp_path: Path, overlay: dict, has_gpu: bool, monkeypatch) -> tuple[int, Path]:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: has_gpu)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index=0: "pretend GPU")
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(overlay))
    out = tmp_path / "gpu_check.json"
    return check_gpu.main(
        ["--config", str(REPO / "config" / "config.yaml"), str(config), "--out", str(out)]
    ), out


def test_paper_scale_without_gpu_stops_and_names_the_quick_preset(check_gpu, tmp_path, monkeypatch, capsys):
    status, out = run(check_gpu, tmp_path, {}, has_gpu=False, monkeypatch=monkeypatch)
    assert status == 2 and not out.exists()
    assert "config/quick.yaml" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("overlay", "has_gpu"),
    [
        ({"workflow": {"allow_cpu_paper_scale": True}}, False),  # explicitly allowed
        ({"preset": "quick"}, False),  # reduced presets are meant for CPUs
        ({}, True),  # paper scale with a GPU
    ],
)
def test_allowed_cases_record_the_device(check_gpu, tmp_path, monkeypatch, overlay, has_gpu):
    status, out = run(check_gpu, tmp_path, overlay, has_gpu=has_gpu, monkeypatch=monkeypatch)
    assert status == 0
    record = json.loads(out.read_text())
    assert record["gpu_available"] is has_gpu and "device" in record
