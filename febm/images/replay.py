"""Replay buffer of Langevin chains (docs/original-code.md §5), with labels kept beside the images.

Two behaviours of the original are switches (``images.<dataset>.replay``, both on by default, as the
original; ``febm.fidelity`` lists them):

* ``relabel``: a replayed chain continues under the current batch's label (the original stored images
  only); off, it keeps the class it was sampled for;
* ``original_quantisation``: uint8 storage writes floor(255 x) and reads (k + U(0, 1)) / 256, shrinking
  values by 255/256 per round trip; off, it writes floor(256 x), the data's dequantisation.

Kept as the original: a FIFO ring of ``capacity`` appended entries (sampled slots are not written
back), starts drawn uniformly with replacement once the buffer holds more than a batch, and each start
replaced by fresh U(0, 1) noise with probability ``reinit_prob`` (5%). Buffers are per process.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from febm.errors import FebmError
from febm.io import write_bytes_atomic

STORAGE_DTYPES = {"uint8": torch.uint8, "float32": torch.float32}


class ReplayBuffer:
    def __init__(
        self,
        capacity: int,
        image_shape: tuple[int, int, int],
        *,
        storage: str = "uint8",
        device: torch.device | str = "cpu",
        relabel: bool = False,
        original_quantisation: bool = False,
    ) -> None:
        if storage not in STORAGE_DTYPES:
            raise ValueError(f"replay storage must be one of {sorted(STORAGE_DTYPES)}, got {storage!r}")
        self.capacity = int(capacity)
        self.image_shape = tuple(image_shape)
        self.storage = storage
        self.relabel = relabel
        # floor(255 x) as the original wrote it; read back as k/256 either way
        self.quantisation_levels = 255.0 if original_quantisation else 256.0
        self.device = torch.device(device)
        self.images = torch.zeros(
            (self.capacity, *self.image_shape), dtype=STORAGE_DTYPES[storage], device=device
        )
        self.labels = torch.zeros(self.capacity, dtype=torch.long, device=device)
        self.size = 0
        self.next_slot = 0

    def __len__(self) -> int:
        return self.size

    def _encode(self, x: Tensor) -> Tensor:
        if self.storage == "uint8":
            return torch.clamp(torch.floor(x.detach() * self.quantisation_levels), 0, 255).to(torch.uint8)
        return x.detach().float()

    def _decode(self, stored: Tensor, generator: torch.Generator | None) -> Tensor:
        if self.storage == "uint8":
            jitter = torch.rand(stored.shape, generator=generator, device=stored.device)
            return (stored.float() + jitter) / 256.0
        return stored.clone()

    def push(self, x: Tensor, y: Tensor | None) -> None:
        """Append a batch (oldest entries are overwritten once full)."""
        count = x.shape[0]
        if count > self.capacity:
            x, y = x[-self.capacity :], None if y is None else y[-self.capacity :]
            count = self.capacity
        slots = (self.next_slot + torch.arange(count, device=self.device)) % self.capacity
        self.images[slots] = self._encode(x.to(self.device))
        self.labels[slots] = 0 if y is None else y.to(self.device)
        self.next_slot = (self.next_slot + count) % self.capacity
        self.size = min(self.size + count, self.capacity)

    def chain_starts(
        self,
        batch_labels: Tensor | None,
        batch_size: int,
        *,
        reinit_prob: float,
        generator: torch.Generator | None,
    ) -> tuple[Tensor, Tensor | None]:
        """Starts for one sampler run: replayed chains, each fresh U(0, 1) noise with prob ``reinit_prob``.

        Fresh starts take the current batch's labels, replayed ones too with ``relabel``. Before the
        buffer holds more than a batch, all starts are fresh noise (as the original).
        """
        noise = torch.rand((batch_size, *self.image_shape), generator=generator, device=self.device)
        if self.size <= batch_size:
            return noise, batch_labels
        slots = torch.randint(0, self.size, (batch_size,), generator=generator, device=self.device)
        replayed = self._decode(self.images[slots], generator)
        fresh = torch.rand(batch_size, generator=generator, device=self.device) < reinit_prob
        starts = torch.where(fresh[:, None, None, None], noise, replayed)
        if batch_labels is None or self.relabel:
            return starts, batch_labels
        labels = torch.where(fresh, batch_labels.to(self.device), self.labels[slots])
        return starts, labels

    def newest(self, count: int) -> tuple[Tensor, Tensor]:
        """The ``count`` most recently pushed chains (fewer while the buffer is filling) as uint8
        (floor(256 x), the evaluation's quantisation) with their labels; reads no random numbers."""
        count = min(count, self.size)
        slots = (self.next_slot - 1 - torch.arange(count, device=self.device)) % self.capacity
        stored = self.images[slots]
        if self.storage != "uint8":
            stored = self._encode(stored)
        return stored, self.labels[slots]

    def state_dict(self) -> dict[str, Any]:
        return {
            "images": self.images[: self.size].cpu().clone(),
            "labels": self.labels[: self.size].cpu().clone(),
            "next_slot": self.next_slot,
            "capacity": self.capacity,
            "storage": self.storage,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state["capacity"] != self.capacity or state["storage"] != self.storage:
            raise ValueError(
                f"replay buffer in the checkpoint has capacity {state['capacity']} / storage "
                f"{state['storage']!r}, the config asks for {self.capacity} / {self.storage!r}"
            )
        size = state["images"].shape[0]
        self.images[:size] = state["images"].to(self.device)
        self.labels[:size] = state["labels"].to(self.device)
        self.size = size
        self.next_slot = int(state["next_slot"])


# --- the run's final buffer on disk (replay.npz), for the `replay` evaluation protocol -----------

REPLAY_FILE_FORMAT = "febm-replay-buffer/1"


class ReplayFileError(FebmError):
    """A replay-buffer file that is missing, damaged or too small for the samples asked for."""


@dataclass
class ReplayChains:
    images: np.ndarray  # (N, H, W, C) uint8, floor(256 x) of the stored chains
    labels: np.ndarray  # (N,) int64: the class each chain was sampled for (0 for unconditional runs)
    iteration: int  # the training iteration the buffer was saved at


def save_replay_chains(path: str | Path, images: torch.Tensor, labels: torch.Tensor, iteration: int) -> None:
    """Write a run's final replay buffer (uint8 NCHW tensor as stored in training) atomically."""
    buffer = io.BytesIO()
    np.savez(
        buffer,
        format=np.array(REPLAY_FILE_FORMAT),
        images=images.permute(0, 2, 3, 1).contiguous().cpu().numpy().astype(np.uint8),
        labels=labels.cpu().numpy().astype(np.int64),
        iteration=np.array(int(iteration)),
    )
    write_bytes_atomic(path, buffer.getvalue())


def load_replay_chains(path: str | Path) -> ReplayChains:
    path = Path(path)
    if not path.is_file():
        raise ReplayFileError(
            f"replay buffer {str(path)!r} does not exist; it is written by `febm train-images` "
            "(rerun training, which resumes from its checkpoint) or choose evaluation.protocol paper/plain"
        )
    try:
        with np.load(path, allow_pickle=False) as payload:
            if str(payload["format"]) != REPLAY_FILE_FORMAT:
                raise ValueError(f"format {str(payload['format'])!r}")
            chains = ReplayChains(
                images=payload["images"], labels=payload["labels"], iteration=int(payload["iteration"])
            )
    except Exception as error:  # zip, key and dtype errors of a truncated or foreign file
        raise ReplayFileError(
            f"replay buffer {str(path)!r} cannot be read ({type(error).__name__}: {error}); "
            "rerun `febm train-images` for this run to write it again"
        ) from None
    if chains.images.ndim != 4 or chains.images.dtype != np.uint8 or len(chains.labels) != len(chains.images):
        raise ReplayFileError(
            f"replay buffer {str(path)!r} holds images {chains.images.shape} {chains.images.dtype} and "
            f"{len(chains.labels)} labels; expected uint8 (N, H, W, C) with one label each"
        )
    return chains
