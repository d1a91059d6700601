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
TABLES = [f"results/tables/table{number}.csv" for number in (1, 2, 5)] + ["results/tables/fashion_mnist.csv"]
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
    assert {path.parent.name for path in benchmarks} >= {
        "toy_train",
        "train_images",
        "score_images",
        "train_classifier",
        "classifier_score",
    }


def test_report_opens_cleanly_in_chromium(smoke_run):
    page = inspect_page(smoke_run / REPORT)
    grids = len(list((smoke_run / "results" / "figures" / "samples").rglob("*.png")))
    assert grids > 0
    assert_report_reads_well(page, figures=4 + grids)
    for table in ("table1", "table2", "table5"):
        assert "stand-in" in page.sections[table] or "reduced" in page.sections[table]
        assert "not run" not in page.sections[table]
    # The fidelity switchboard, as the runs recorded it: the smoke preset keeps the released code's
    # training recipe, but scores final checkpoints on 8 samples with fresh chains, and says so.
    fidelity = page.sections["fidelity"]
    for dataset in ("cifar10", "celeba32", "fashion_mnist"):
        assert f"{dataset}: " in fidelity and "switch(es) differ from the released code" in fidelity
    assert "images.cifar10.training.second_sampler_run" in fidelity and "(differs)" in fidelity
    assert "febm/jensen_shannon/seed0" in fidelity and "dual/jensen_shannon/seed0" in fidelity


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


# --- run identity: growing or editing the grid keeps finished work (febm.runspec) ----------------


def planned_jobs(workdir: Path, overlay: dict) -> set[tuple[str, str]]:
    """(rule, wildcards) of every job a dry run plans with the smoke preset plus ``overlay``."""
    import yaml

    (workdir / "overlay.yaml").write_text(yaml.safe_dump(overlay))
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "--cores", "2", "--dry-run", "--configfile", "config/smoke.yaml",
         "overlay.yaml"],
        cwd=workdir, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-4000:]
    jobs = set()
    for block in re.split(r"\n(?=(?:local)?rule \w+:)", result.stdout + result.stderr):
        header = re.match(r"(?:local)?rule (\w+):", block.strip())
        if header:
            wildcards = re.search(r"^\s+wildcards: (.*)$", block, re.M)
            jobs.add((header.group(1), wildcards.group(1) if wildcards else ""))
    return jobs


def rules_of(jobs: set[tuple[str, str]]) -> set[str]:
    return {rule for rule, _ in jobs}


def jobs_of(jobs: set[tuple[str, str]], rule: str) -> set[str]:
    return {wildcards for name, wildcards in jobs if name == rule}


AGGREGATES = {"all", "report"}


def test_adding_seeds_plans_only_the_new_runs_and_what_reads_them(smoke_run):
    jobs = planned_jobs(smoke_run, {"toy": {"seeds": [0, 1, 2]}, "images": {"seeds": [0, 1]}})
    toy_new = {f"toy_method={m}, toy_divergence=kl, seed=2" for m in ("febm", "cd", "mle")}
    assert jobs_of(jobs, "toy_train") == toy_new
    trained = jobs_of(jobs, "train_images")
    assert len(trained) == 9 and all(w.endswith("seed=1") for w in trained)  # 3 datasets x (JS, CD, dual)
    assert rules_of(jobs) <= AGGREGATES | {
        "toy_train", "toy_stability", "toy_table", "toy_check", "toy_figure", "train_images", "sample_images",
        "score_images", "classifier_score", "sample_grid", "image_table", "classifier_table", "classifier_curve",
    }  # fmt: skip
    assert len(jobs_of(jobs, "score_images")) == 6 and len(jobs_of(jobs, "classifier_score")) == 3


def test_adding_a_divergence_plans_only_its_runs(smoke_run):
    jobs = planned_jobs(smoke_run, {"images": {"divergences": ["jensen_shannon", "squared_hellinger"]}})
    assert {w.split(", seed")[0] for w in jobs_of(jobs, "train_images")} == {
        f"dataset={d}, image_method=febm, image_divergence=squared_hellinger"
        for d in ("cifar10", "celeba32", "fashion_mnist")
    }
    assert not {"prepare_data", "fid_stats", "train_classifier", "toy_train", "toy_optimum"} & rules_of(jobs)


def test_editing_a_figure_setting_reruns_only_figures(smoke_run):
    jobs = planned_jobs(smoke_run, {"toy": {"figures": {"dpi": 61}}})
    assert rules_of(jobs) == AGGREGATES | {"toy_figure"} and len(jobs_of(jobs, "toy_figure")) == 4


def test_editing_one_dataset_reruns_nothing_of_the_other(smoke_run):
    jobs = planned_jobs(smoke_run, {"images": {"cifar10": {"sampler": {"steps": 4}}}})
    trained = jobs_of(jobs, "train_images")
    assert len(trained) == 3 and all("dataset=cifar10" in w for w in trained)
    assert not any("celeba32" in w or "fashion_mnist" in w for _, w in jobs)
    assert not {"prepare_data", "fid_stats", "train_classifier", "toy_train"} & rules_of(jobs)


def test_checkpoint_folders_of_unchanged_runs_keep_their_paths(smoke_run):
    import yaml

    from febm.config import load_config
    from febm.runspec import checkpoint_dir, image_runs

    base = load_config([smoke_run / "config" / "config.yaml", smoke_run / "config" / "smoke.yaml"])
    grown = yaml.safe_load(yaml.safe_dump(base))
    grown["images"]["seeds"] = [0, 1]
    grown["images"]["divergences"] = ["jensen_shannon", "kl"]
    grown["images"]["cifar10"]["training"]["iterations"] = 6  # a longer run resumes where it stopped
    grown = load_config_from(grown)
    for run in image_runs(base):
        folder = checkpoint_dir(base, run, "resources/standin")
        assert (smoke_run / folder).is_dir(), folder
        assert checkpoint_dir(grown, run, "resources/standin") == folder
    edited = load_config_from({**grown, "images": {**grown["images"], "celeba32": {
        **grown["images"]["celeba32"], "network": {"num_filters": 4}}}})  # fmt: skip
    for run in image_runs(base):
        moved = checkpoint_dir(edited, run, "resources/standin") != checkpoint_dir(
            base, run, "resources/standin"
        )
        assert moved == (run.dataset == "celeba32"), run


def load_config_from(config: dict) -> dict:
    from febm.config import validate

    return validate(config)
