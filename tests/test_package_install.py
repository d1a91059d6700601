"""The package does not know the repository's layout: installed as a plain (non-editable) copy and run
from an empty folder, it validates configs and renders a report."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_an_installed_copy_runs_outside_the_repository(tmp_path):
    target, workdir, source = tmp_path / "site", tmp_path / "work", tmp_path / "source"
    workdir.mkdir()
    # Built from a copy: an in-tree build would leave build/ in the repository.
    shutil.copytree(REPO / "febm", source / "febm", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, source / name)
    install = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
         "--target", str(target), str(source)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert install.returncode == 0, install.stderr[-2000:]
    env = {**os.environ, "PYTHONPATH": str(target)}

    def febm(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "febm", *args],
            cwd=workdir,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )

    where = subprocess.run(
        [sys.executable, "-c", "import febm; print(febm.__file__)"], cwd=workdir, env=env, capture_output=True,
        text=True,
    )  # fmt: skip
    assert where.stdout.strip().startswith(str(target)), where.stdout + where.stderr
    (workdir / "config.yaml").write_text("preset: smoke\n")
    out = workdir / "report" / "index.html"
    result = febm("report", "--config", "config.yaml", "--templates", str(REPO / "report"), "--out", str(out))
    assert result.returncode == 0, result.stderr[-2000:]
    html = out.read_text()
    assert "not run" in html and "unknown (not a git checkout)" in html
