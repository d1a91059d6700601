"""``febm sample``: draw images from a trained energy network into an ``.npz``.

The protocols themselves (``paper``: the original's persistent-buffer schedule; ``plain``: fresh
chains from noise; ``replay``: the run's final replay buffer continued) and their settings belong to the evaluation stage
(``febm.evaluation.protocol.sample_with_protocol``, config section ``evaluation``); this module loads
``model.pt``, picks the device and writes the file.

Output keys: ``images`` uint8 (N, 32, 32, 3), ``labels`` int64 (N,) (-1 for unconditional models),
``record`` (JSON text: protocol, settings, checkpoint metadata incl. ``standin_data``).
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from febm.errors import FebmError
from febm.images.checkpoint import load_energy_model
from febm.images.distributed import resolve_device
from febm.io import write_bytes_atomic


def sample_to_file(
    *,
    checkpoint: Path,
    count: int,
    protocol: str,
    out: Path,
    replay: Path | None = None,
    config_paths: list[Path] | None,
    seed: int | None,
    device: str | None,
) -> dict[str, Any]:
    from febm.config import load_config, validate
    from febm.evaluation.protocol import sample_with_protocol
    from febm.fidelity import fidelity_record

    if count < 1:
        raise FebmError(f"--n must be at least 1, got {count}")
    if (protocol == "replay") != (replay is not None):
        raise FebmError("--replay (the run's replay.npz) goes with --protocol replay, and only with it")
    config = load_config(config_paths) if config_paths else validate({})
    evaluation = config["evaluation"]
    target = resolve_device(device or evaluation["device"], 0)
    model, meta = load_energy_model(checkpoint, target)
    num_classes = model.config.num_classes or None
    generator = torch.Generator(target).manual_seed(evaluation["sample_seed"] if seed is None else seed)
    chains = None
    if replay is not None:
        from febm.images.replay import load_replay_chains

        chains = load_replay_chains(replay)
    samples = sample_with_protocol(
        protocol, model, count, num_classes, evaluation, generator, target, replay_chains=chains
    )
    labels = samples.labels if samples.labels is not None else np.full(count, -1, dtype=np.int64)
    record = {**samples.record, "checkpoint": str(checkpoint), "model": meta, "count": count}
    if meta.get("dataset"):  # the switches of febm.fidelity this sampling acted on
        record["fidelity"] = fidelity_record(config, meta["dataset"], "sample")
    buffer = io.BytesIO()
    np.savez(
        buffer, images=samples.images, labels=labels.astype(np.int64), record=np.array(json.dumps(record))
    )
    write_bytes_atomic(out, buffer.getvalue())
    return {"out": str(out), "count": count, "protocol": protocol, "standin_data": meta.get("standin_data")}
