"""Saving and loading image models and full training state.

Two kinds of files:

* ``model.pt`` (the run's result): the final energy network's weights (spectral-norm vectors u
  included), its :class:`NetworkConfig` and metadata (dataset, method, divergence, training sampler
  settings). Plain tensors and builtins only, so ``torch.load(..., weights_only=True)`` reads it.
* training state ``state_<iteration>_rank<r>.pt`` in the checkpoint folder: everything needed to
  continue a run exactly (both networks, both optimisers, replay buffer, RNG state, iteration).
  Rank 0's file carries the shared state (networks, optimisers); every rank's file its own replay
  buffer and generator. The newest complete set is resumed; a truncated or unreadable file falls back
  to the previous set.

Every file is written atomically (``febm.io.save_torch_atomic``).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import torch

from febm.errors import FebmError
from febm.images.networks import NetworkConfig, ResNet32Energy, build_energy_network
from febm.io import save_torch_atomic

MODEL_FORMAT = "febm-image-energy/1"
STATE_FORMAT = "febm-image-train-state/1"
_STATE_NAME = re.compile(r"^state_(?P<iteration>\d{8})_rank(?P<rank>\d+)\.pt$")


class CheckpointError(FebmError):
    """A model or training-state file that is missing, unreadable or of the wrong kind."""


def save_energy_model(path: str | Path, model: ResNet32Energy, meta: dict[str, Any]) -> None:
    """Write ``model.pt``: weights, network config and metadata (builtins only)."""
    state = {key: value.detach().cpu().clone() for key, value in model.state_dict().items()}
    save_torch_atomic(
        path,
        {"format": MODEL_FORMAT, "network": model.config.to_dict(), "state_dict": state, "meta": dict(meta)},
    )


def _load(path: Path, what: str) -> dict[str, Any]:
    if not path.is_file():
        raise CheckpointError(f"{what} {str(path)!r} does not exist")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for a truncated or foreign file
        raise CheckpointError(
            f"{what} {str(path)!r} cannot be read ({type(error).__name__}: {str(error).splitlines()[0][:200]}); "
            "it is truncated or not a febm file: copy it again or rerun `febm train-images`"
        ) from None


def load_energy_model(path: str | Path, device: str | torch.device = "cpu") -> tuple[ResNet32Energy, dict]:
    """Rebuild the energy network saved in ``model.pt``; returns (model in eval mode on device, meta)."""
    path = Path(path)
    payload = _load(path, "model file")
    if not isinstance(payload, dict) or payload.get("format") != MODEL_FORMAT:
        raise CheckpointError(
            f"model file {str(path)!r} is not a febm image energy model (expected format {MODEL_FORMAT!r}); "
            "pass the model.pt written by `febm train-images`"
        )
    try:
        model = build_energy_network(NetworkConfig.from_dict(payload["network"]))
        model.load_state_dict(payload["state_dict"])
    except (KeyError, TypeError, ValueError, RuntimeError) as error:  # RuntimeError: shape mismatch
        raise CheckpointError(
            f"model file {str(path)!r} does not match its network description ({type(error).__name__}: "
            f"{' '.join(line.strip() for line in str(error).splitlines()[:2])[:240]}); it is damaged or was "
            "edited: use the model.pt that `febm train-images` wrote"
        ) from None
    model.to(device).eval()
    meta = dict(payload.get("meta", {}))
    meta["network"] = dict(payload["network"])
    return model, meta


# --- full training state -------------------------------------------------------------------------


def state_path(checkpoint_dir: str | Path, iteration: int, rank: int) -> Path:
    return Path(checkpoint_dir) / f"state_{iteration:08d}_rank{rank}.pt"


def saved_iterations(checkpoint_dir: str | Path) -> list[int]:
    """Iterations with a rank-0 state file, newest first."""
    folder = Path(checkpoint_dir)
    if not folder.is_dir():
        return []
    found = set()
    for child in folder.iterdir():
        match = _STATE_NAME.match(child.name)
        if match and int(match.group("rank")) == 0:
            found.add(int(match.group("iteration")))
    return sorted(found, reverse=True)


def save_training_state(checkpoint_dir: str | Path, iteration: int, rank: int, state: dict[str, Any]) -> Path:
    path = state_path(checkpoint_dir, iteration, rank)
    save_torch_atomic(path, {"format": STATE_FORMAT, "iteration": iteration, "rank": rank, **state})
    return path


def prune_training_states(checkpoint_dir: str | Path, rank: int, keep: int) -> None:
    """Delete this rank's state files except the ``keep`` newest (keep >= 2 so a fallback exists)."""
    for iteration in saved_iterations(checkpoint_dir)[keep:]:
        state_path(checkpoint_dir, iteration, rank).unlink(missing_ok=True)


def try_load_training_state(checkpoint_dir: str | Path, iteration: int, rank: int) -> dict[str, Any] | None:
    """This rank's state at ``iteration`` merged with rank 0's shared part; None when unreadable."""
    try:
        own = _load(state_path(checkpoint_dir, iteration, rank), "training state")
        shared = own if rank == 0 else _load(state_path(checkpoint_dir, iteration, 0), "training state")
    except CheckpointError as error:
        print(f"febm train-images: warning: {error}; trying an older checkpoint", file=sys.stderr)
        return None
    if own.get("format") != STATE_FORMAT or own.get("iteration") != iteration:
        print(
            f"febm train-images: warning: {state_path(checkpoint_dir, iteration, rank)} is not a "
            "febm training state; trying an older checkpoint",
            file=sys.stderr,
        )
        return None
    merged = dict(own)
    for key in ("energy", "variational", "optimiser_energy", "optimiser_variational", "config_hash"):
        if key in shared:
            merged[key] = shared[key]
    return merged


def latest_loadable_iteration(checkpoint_dir: str | Path, rank: int) -> tuple[int, dict[str, Any]] | None:
    """Newest readable state for this rank, falling back past truncated files; None for a fresh run."""
    for iteration in saved_iterations(checkpoint_dir):
        state = try_load_training_state(checkpoint_dir, iteration, rank)
        if state is not None:
            return iteration, state
    return None
