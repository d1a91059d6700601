"""Resumable training state of both trainers (the 1-D study and the image study): one module, one policy.

A checkpoint folder holds ``state_<iteration>_rank<r>.pt`` files (iteration zero-padded to 8 digits; one
file per process, rank 0 for a single process). Each file is written atomically (``febm.io``), so a kill at
any point leaves complete files only; :func:`prune_states` then keeps the newest ``keep`` (at least 2, so
that a file damaged on disk later still has an older one to fall back to). Loading takes the newest
readable file and falls back past damaged, truncated or foreign ones with a one-line warning each; a
damaged file skipped that way is set aside as ``<name>.damaged`` (so the next save replaces it cleanly).
Files exist but none is readable: :class:`CheckpointError` (nothing is silently restarted over them).

Several processes: rank 0's file also carries the state every rank shares (networks, optimisers), named
by the caller's ``shared_keys``; each rank's file carries its own part (replay buffer, generator). A rank's
state is its own file merged with rank 0's shared keys.

**One fingerprint, one policy.** Every file records the run's *settings key*: a short hash of the run's
identity and every setting that changes its numbers, computed by the trainer (images:
``febm.runspec.resume_key``; 1-D: ``ToyTrainer.settings_key``), both with ``febm.config.config_hash``.
Checkpoint folders are named after that key (``resources/checkpoints/<run>/<key>``, and for the 1-D study
``<run dir>/checkpoints/<key>``), so a config edit starts in a fresh folder and switching a setting back
resumes its old one. A file in the folder whose key differs from the run's therefore means files were
moved or a folder was passed by hand: loading **refuses** with a one-line :class:`CheckpointSettingsError`
naming the folder and the two ways out (another folder, or delete that one). It never resumes across
settings (the wrong numbers would come out as the new result) and never deletes someone's checkpoints.

Torch-free until a file is read or written.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from febm import io as atomic_io  # called through the module: the fault hooks (tests/) wrap its writer
from febm.errors import FebmError

STATE_FORMAT = "febm-train-state/1"
# Image states written before the two trainers shared this module: the same layout, another name.
_ACCEPTED_FORMATS = (STATE_FORMAT, "febm-image-train-state/1")
_RESERVED = ("format", "iteration", "rank", "settings_key")
_STATE_NAME = re.compile(r"^state_(?P<iteration>\d{8})_rank(?P<rank>\d+)\.pt$")
MIN_KEEP = 2


class CheckpointError(FebmError):
    """A model or training-state file that cannot be used (for state: every file damaged, or, subclass, other settings)."""


class CheckpointSettingsError(CheckpointError):
    """A state file whose settings key is not this run's."""


def state_path(folder: str | Path, iteration: int, rank: int = 0) -> Path:
    return Path(folder) / f"state_{iteration:08d}_rank{rank}.pt"


def saved_iterations(folder: str | Path, rank: int = 0) -> list[int]:
    """Iterations with a state file of ``rank``, newest first (readable or not)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = set()
    for child in folder.iterdir():
        match = _STATE_NAME.match(child.name)
        if match and int(match.group("rank")) == rank:
            found.add(int(match.group("iteration")))
    return sorted(found, reverse=True)


def save_state(
    folder: str | Path, iteration: int, state: dict[str, Any], settings_key: str, rank: int = 0
) -> Path:
    """Write ``state_<iteration>_rank<rank>.pt`` atomically (serialised first: a failure writes nothing)."""
    import torch

    clash = [key for key in _RESERVED if key in state]
    if clash:
        raise ValueError(f"state keys {clash} are reserved for the checkpoint's own fields")
    path = state_path(folder, iteration, rank)
    payload = {"format": STATE_FORMAT, "iteration": iteration, "rank": rank, "settings_key": settings_key}
    buffer = io.BytesIO()
    torch.save({**payload, **state}, buffer)
    atomic_io.write_bytes_atomic(path, buffer.getvalue())
    return path


def prune_states(folder: str | Path, keep: int, rank: int = 0) -> None:
    """Delete this rank's state files except the ``keep`` newest (call it once the new file is in place)."""
    if keep < MIN_KEEP:
        raise ValueError(
            f"keep at least {MIN_KEEP} states (a damaged newest one needs a fallback), got {keep}"
        )
    for iteration in saved_iterations(folder, rank)[keep:]:
        state_path(folder, iteration, rank).unlink(missing_ok=True)


def _read(path: Path, iteration: int) -> tuple[dict[str, Any] | None, str]:
    """The payload of one state file, or None and why it is unusable."""
    import torch

    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        return None, "missing"
    except Exception as error:  # torch raises many types for a truncated or foreign file
        detail = str(error).splitlines()[0][:100] if str(error) else type(error).__name__
        return None, f"unreadable: {detail}"
    if not isinstance(payload, dict) or payload.get("format") not in _ACCEPTED_FORMATS:
        return None, "not a febm training state"
    if payload.get("iteration") != iteration:
        return None, f"holds iteration {payload.get('iteration')!r}, not {iteration}"
    return payload, ""


def _read_merged(
    folder: str | Path, iteration: int, rank: int, shared_keys: Iterable[str], what: str
) -> tuple[dict[str, Any] | None, Path | None]:
    """(merged state, None), or (None, the unusable file) after a one-line warning."""
    own_path = state_path(folder, iteration, rank)
    own, problem = _read(own_path, iteration)
    shared, bad = own, own_path
    if own is not None and rank != 0:
        bad = state_path(folder, iteration, 0)
        shared, problem = _read(bad, iteration)
    if own is None or shared is None:
        print(f"{what}: warning: {bad} is {problem}; trying an older checkpoint", file=sys.stderr)
        return None, bad
    merged = {key: value for key, value in own.items() if key != "format"}
    for key in shared_keys:
        if key in shared:
            merged[key] = shared[key]
    return merged, None


def read_state(
    folder: str | Path, iteration: int, rank: int = 0, shared_keys: Iterable[str] = (), what: str = "febm"
) -> dict[str, Any] | None:
    """This rank's state at ``iteration`` merged with rank 0's ``shared_keys``; None (and a one-line warning
    on stderr) when a file is missing, damaged or not a training state. The settings key is not checked
    here: :func:`check_settings` does that."""
    return _read_merged(folder, iteration, rank, shared_keys, what)[0]


def check_settings(state: dict[str, Any], settings_key: str, folder: str | Path, other_folder: str) -> None:
    """The policy for a state of other settings: refuse (see the module docstring)."""
    saved = state.get("settings_key")
    if saved != settings_key:
        raise CheckpointSettingsError(
            f"the checkpoints in {str(folder)!r} belong to a run with other settings (settings key "
            f"{saved!r}, this run has {settings_key!r}); use another {other_folder} or delete that folder"
        )


def load_newest(
    folder: str | Path,
    settings_key: str,
    rank: int = 0,
    shared_keys: Iterable[str] = (),
    what: str = "febm",
    other_folder: str = "checkpoint folder",
) -> tuple[int, dict[str, Any]] | None:
    """(iteration, state) of the newest readable state of this rank; None when the folder holds none.

    Damaged newer files are skipped with a warning and set aside; a readable state made with other
    settings raises :class:`CheckpointSettingsError`; files that are all damaged raise
    :class:`CheckpointError`. ``other_folder`` names the option that picks another folder, for the message.
    """
    shared_keys = tuple(shared_keys)
    skipped: list[Path] = []
    for iteration in saved_iterations(folder, rank):
        state, bad = _read_merged(folder, iteration, rank, shared_keys, what)
        if state is None:
            skipped.append(bad)
            continue
        check_settings(state, settings_key, folder, other_folder)
        own = [path for path in skipped if _STATE_NAME.match(path.name)["rank"] == str(rank)]
        for path in own:  # set aside this rank's own files only: other ranks read theirs and rank 0's
            with contextlib.suppress(OSError):
                os.replace(path, path.with_name(path.name + ".damaged"))
        return iteration, state
    if skipped:
        names = ", ".join(path.name for path in skipped)
        raise CheckpointError(
            f"no readable training state in {str(folder)!r} ({names} are damaged, see the warnings above); "
            "restore them or delete that folder to start the run over"
        )
    return None
