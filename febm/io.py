"""Atomic file writes and run provenance shared by every stage.

A crash (or SIGKILL) at any point leaves either the previous file or the complete new one, never a
truncated file: write to a temporary file in the same folder, fsync, then rename over the target.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import hashlib
import io
import json
import os
import platform
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from febm import __version__
from febm.errors import FebmError


class OutputError(FebmError):
    """An output location that cannot be written."""


# What to do about the usual reasons a write fails; every OutputError names one.
_WRITE_ERROR_FIXES = {
    errno.ENOSPC: "free disk space (or point the output elsewhere) and rerun; the previous file is kept",
    errno.EDQUOT: "free space within your disk quota and rerun; the previous file is kept",
    errno.EACCES: "make the folder writable for this user (or choose another output folder)",
    errno.EPERM: "make the folder writable for this user (or choose another output folder)",
    errno.EROFS: "the file system is read-only; choose an output folder on a writable one",
}


def _write_error(path: Path, error: OSError) -> OutputError:
    reason = error.strerror or str(error) or type(error).__name__
    fix = _WRITE_ERROR_FIXES.get(error.errno, "check that the folder exists and is writable, then rerun")
    return OutputError(f"cannot write {str(path)!r}: {reason}; {fix}")


def _current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# mkstemp creates files readable by the owner only; results should get the usual permissions.
_FILE_MODE = 0o666 & ~_current_umask()


def _remove_stale_temporaries(path: Path, keep: Path) -> None:
    """Temporary files of ``path`` left by a killed writer (SIGKILL skips every cleanup)."""
    for stale in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        if stale != keep:
            with contextlib.suppress(OSError):
                stale.unlink()


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is fsynced and renamed onto ``path``.

    One writer per target: a temporary file of the same target left by a killed writer is removed.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as error:
        raise _write_error(path, error) from None
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        _remove_stale_temporaries(path, keep=tmp)
        yield tmp
        os.chmod(tmp, _FILE_MODE)
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        with contextlib.suppress(OSError):
            dir_fd = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
    except OSError as error:
        raise _write_error(path, error) from None
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes_atomic(path: str | Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(path: str | Path, text: str) -> None:
    write_bytes_atomic(path, text.encode())


def write_json_atomic(path: str | Path, data: Mapping[str, Any]) -> None:
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True, default=_json_default) + "\n")


def save_torch_atomic(path: str | Path, obj: Any) -> None:
    """torch.save through a temporary file; load it back with ``torch.load(..., weights_only=True)``."""
    import torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    write_bytes_atomic(path, buffer.getvalue())


def _json_default(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot serialise {type(value).__name__} to JSON")


def provenance() -> dict[str, Any]:
    """Versions and host facts recorded in every metrics file."""
    import torch

    return {
        "febm_version": __version__,
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
        "host": platform.node(),
        "device": torch.cuda.get_device_name(0)
        if torch.cuda.is_available()
        else f"cpu ({os.cpu_count()} cores)",
    }


def file_digest(path: str | Path, algorithm: str = "sha256") -> str:
    """Hex digest of a file, read in 1 MiB chunks (checksums of downloads, weights and classifiers)."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
