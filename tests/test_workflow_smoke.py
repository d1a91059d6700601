"""End to end: the smoke preset through Snakemake, then the report in a real browser.

The workflow files (Snakefile, workflow/, config/, report/) are copied to a temporary folder, with a
link to the febm package (its schema and the paper's numbers), and run there, so the test can edit a
template without touching the repository. The stand-in data, stand-in Inception weights and every
result stay in that folder.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_report_browser import assert_report_reads_well, inspect_page

REPO = Path(__file__).resolve().parents[1]
WORKFLOW_FILES = ["Snakefile", "workflow", "config", "report"]
TABLES = [f"results/tables/table{number}.csv" for number in (1, 2, 5)]
FIGURES = [f"results/figures/figure{number}.{kind}" for number in (1, 2, 3, 4) for kind in ("png", "pdf")]
REPORT = "results/report/index.html"


def snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "snakemake", "--cores", "2", "--configfile", "config/smoke.yaml", *args],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=600,
    )


def job_names(output: str) -> set[str]:
    return set(re.findall(r"^rule (\w+):", output, re.M)) | set(
        re.findall(r"^localrule (\w+):", output, re.M)
    )


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    workdir = tmp_path_factory.mktemp("smoke")
    for name in WORKFLOW_FILES:
        source, target = REPO / name, workdir / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, target)
    # A link, not a partial copy: a folder named febm/ without the package would shadow it on import.
    (workdir / "febm").symlink_to(REPO / "febm", target_is_directory=True)
    result = snakemake(workdir)
    logs = "\n".join(
        f"--- {log.relative_to(workdir)}\n{log.read_text()[-2000:]}"
        for log in sorted((workdir / "results" / "logs").rglob("*.log"))
        if "rror" in log.read_text()
    )
    assert result.returncode == 0, result.stderr[-6000:] + logs
    return workdir


def test_smoke_preset_produces_every_table_figure_and_the_report(smoke_run):
    for name in [*TABLES, *FIGURES, REPORT]:
        assert (smoke_run / name).is_file() and (smoke_run / name).stat().st_size > 0, name
    benchmarks = list((smoke_run / "results" / "benchmarks").rglob("*.tsv"))
    assert {path.parent.name for path in benchmarks} >= {"toy_train", "train_images", "score_images"}


def test_report_opens_cleanly_in_chromium(smoke_run):
    page = inspect_page(smoke_run / REPORT)
    grids = len(list((smoke_run / "results" / "figures" / "samples").rglob("*.png")))
    assert grids > 0
    assert_report_reads_well(page, figures=4 + grids)
    for table in ("table1", "table2", "table5"):
        assert "stand-in" in page.sections[table] or "reduced" in page.sections[table]
        assert "not run" not in page.sections[table]


def test_rerunning_a_finished_workflow_does_nothing(smoke_run):
    report_written = (smoke_run / REPORT).stat().st_mtime_ns
    result = snakemake(smoke_run)
    assert result.returncode == 0, result.stderr[-4000:]
    assert "Nothing to be done" in result.stderr + result.stdout
    assert (smoke_run / REPORT).stat().st_mtime_ns == report_written


def test_editing_only_the_report_template_reruns_only_the_report(smoke_run):
    template = smoke_run / "report" / "index.html.j2"
    template.write_text(template.read_text() + "\n{# edited by the test #}\n")
    result = snakemake(smoke_run, "--dry-run")
    assert result.returncode == 0, result.stderr[-4000:]
    assert job_names(result.stdout + result.stderr) == {"report", "all"}
