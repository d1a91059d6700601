"""The image run's result file ``model.pt``: saving it and rebuilding the energy network from it.

``model.pt`` holds the final energy network's weights (spectral-norm vectors u included), its
:class:`NetworkConfig` and metadata (dataset, method, divergence, training sampler settings). Plain
tensors and builtins only, so ``torch.load(..., weights_only=True)`` reads it; it is written atomically
(``febm.io.save_torch_atomic``). The resumable training state lives in :mod:`febm.checkpoints` (shared
with the 1-D study), whose :class:`CheckpointError` is also the error for an unusable model file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from febm.checkpoints import CheckpointError
from febm.images.networks import NetworkConfig, ResNet32Energy, build_energy_network
from febm.io import save_torch_atomic

MODEL_FORMAT = "febm-image-energy/1"
__all__ = ["MODEL_FORMAT", "CheckpointError", "load_energy_model", "save_energy_model"]


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
