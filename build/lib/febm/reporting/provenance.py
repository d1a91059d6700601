"""Where the numbers in the report come from: code version, config fingerprint, software versions."""

from __future__ import annotations

import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

# Everything that can change a number in the report, in the order a reader looks for it.
REPORTED_PACKAGES = [
    "febm",
    "torch",
    "torchvision",
    "numpy",
    "scipy",
    "pandas",
    "pytorch-fid",
    "matplotlib",
    "seaborn",
    "jinja2",
    "snakemake",
    "snakemake-executor-plugin-slurm",
]


def package_versions(names: list[str] = REPORTED_PACKAGES) -> dict[str, str]:
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def _git(repo: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip()


def git_state(repo: Path) -> dict[str, Any]:
    """The commit the code came from and whether tracked files had uncommitted changes."""
    commit = _git(repo, "rev-parse", "HEAD")
    if commit is None:
        return {"commit": "unknown (not a git checkout)", "dirty": None}
    status = _git(repo, "status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": bool(status)}


def collect_provenance(repo: Path, config_hash: str) -> dict[str, Any]:
    return {
        **git_state(repo),
        "config_hash": config_hash,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": package_versions(),
    }
