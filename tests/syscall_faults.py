"""Faults that need the operating system's cooperation, simulated at the system-call boundary (CI runs as
root, which ignores permission bits, and has no tiny file system to fill): a full disk is ``os.fsync``
failing with ENOSPC for a checkpoint's file; a read-only folder is ``os.open``, ``os.mkdir`` and ``open``
failing with EACCES for paths inside it."""

from __future__ import annotations

import builtins
import errno
import os
import re
from pathlib import Path
from typing import Any

import pytest


def disk_full_on_checkpoints(monkeypatch: pytest.MonkeyPatch) -> None:
    """fsync of a checkpoint's file fails with ENOSPC (what a full disk reports on a buffered write)."""
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        name = os.readlink(f"/proc/self/fd/{fd}")
        if re.search(r"/\.state_\d{8}_rank\d+\.pt\.[^/]*\.tmp$", name):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)


def read_only(monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
    """Every way of creating or opening a file for writing below ``folder`` fails with EACCES."""
    folder = folder.resolve()

    def inside(path: Any) -> bool:
        try:
            return Path(os.path.abspath(os.fspath(path))).is_relative_to(folder)
        except TypeError:  # file descriptors
            return False

    def denied(path: Any) -> PermissionError:
        return PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))

    real_open, real_os_open, real_mkdir = builtins.open, os.open, os.mkdir

    def guarded_open(file, mode="r", *args, **kwargs):
        if inside(file) and any(flag in mode for flag in "wax+"):
            raise denied(file)
        return real_open(file, mode, *args, **kwargs)

    def guarded_os_open(path, flags, *args, **kwargs):
        if inside(path) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            raise denied(path)
        return real_os_open(path, flags, *args, **kwargs)

    def guarded_mkdir(path, *args, **kwargs):
        if inside(path) and not os.path.isdir(path):
            raise denied(path)
        return real_mkdir(path, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", guarded_open)
    monkeypatch.setattr(os, "open", guarded_os_open)
    monkeypatch.setattr(os, "mkdir", guarded_mkdir)
