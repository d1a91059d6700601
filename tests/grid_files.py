"""Sample grids for the report's tests, written by their real writers so the report reads producer output.

The training run's samples.png comes from :func:`febm.images.grid.save_grid` given the run's record (as
``febm train-images`` passes its model metadata); the uncurated grid from ``febm image-figure --figure
grid`` on a samples file in the layout ``febm sample`` writes (``images``, ``labels``, and ``record`` with
the checkpoint's metadata under ``model``). Neither writer sees a path it could take the identity from
but the output's, and the tests put the outputs where the workflow would not.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from febm.cli import main as febm_main
from febm.images.grid import save_grid

GRID_CONFIG = {"preset": "smoke", "evaluation": {"device": "cpu"}}


def run_record(dataset: str, method: str, divergence: str, seed: int) -> dict[str, Any]:
    """What model.pt's metadata states about its run (febm/images/run_outputs.py), in brief."""
    return {"dataset": dataset, "method": method, "divergence": divergence, "seed": seed, "preset": "smoke"}


def training_grid(path: Path, run: dict[str, Any] | None, channels: int = 3) -> Path:
    """A training run's samples.png of ``run`` (None: written without an identity, as a snapshot is)."""
    images = torch.rand(4, channels, 8, 8, generator=torch.Generator().manual_seed(0))
    save_grid(images, path, run=run)
    return path


def samples_file(path: Path, model: dict[str, Any] | None, channels: int = 3, classes: int = 10) -> Path:
    """Samples as ``febm sample`` writes them; ``model`` None gives a file with no record at all."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(2 * classes, 8, 8, channels), dtype=np.uint8)
    arrays: dict[str, np.ndarray] = {"images": images, "labels": np.arange(2 * classes) % classes}
    if model is not None:
        record = {"protocol": "plain", "checkpoint": "model.pt", "model": model, "count": len(images)}
        arrays["record"] = np.array(json.dumps(record))
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays)
    return path


# (run, channels) -> the PNG `febm image-figure` wrote for it: each grid is produced once per session
# (a command costs ~0.15 s, mostly loading the config) and copied byte for byte where a test wants it.
_WRITTEN: dict[str, bytes] = {}


def evaluation_grid(path: Path, run: dict[str, Any] | None, channels: int = 3) -> Path:
    """The uncurated grid of ``run``'s evaluation samples, by ``febm image-figure --figure grid``."""
    key = json.dumps([run, channels], sort_keys=True)
    if key not in _WRITTEN:
        inputs = path.parent / f".{path.stem}_inputs"  # beside the PNG, never read by the report
        samples = samples_file(inputs / "samples.npz", run, channels)
        config = inputs / "config.yaml"
        config.write_text(json.dumps(GRID_CONFIG))
        arguments = ["image-figure", "--figure", "grid", "--config", str(config), "--images", str(samples)]
        assert febm_main([*arguments, "--out", str(path)]) == 0
        _WRITTEN[key] = path.read_bytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(_WRITTEN[key])
    return path
