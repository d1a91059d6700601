"""The Snakemake workflow without running jobs: the grid it plans, its targets, config errors, profiles.

Snakemake runs in-process (its command line's `main`), so the ~3 s of importing Snakemake and torch is
paid once for the whole file instead of once per check; the smoke test runs it as a subprocess.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from pathlib import Path

import pytest
import yaml

from febm.config import load_config, validate

REPO = Path(__file__).resolve().parents[1]
PAPER_CONFIG = REPO / "config" / "config.yaml"
NAMED_TARGETS = ["all", "report", "table1", "table2", "table5", "figure1", "figure2", "figure3", "figure4"]


@pytest.fixture
def snakemake(capfd):
    """Run the repository's workflow in `workdir` (nothing lands in the repo); return (status, output)."""
    import snakemake.cli

    def run(workdir: Path | None, *args: str) -> tuple[int, str]:
        location = ["--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir)] if workdir else []
        capfd.readouterr()
        cwd = os.getcwd()
        status = 0
        try:
            with contextlib.chdir(REPO):
                snakemake.cli.main([*location, *args])
        except SystemExit as exit_:
            status = exit_.code if isinstance(exit_.code, int) else 1
        finally:
            os.chdir(cwd)  # Snakemake changes into --directory
        captured = capfd.readouterr()
        return status, captured.out + captured.err

    return run


def job_counts(output: str) -> dict[str, int]:
    """Parse Snakemake's 'Job stats' table."""
    block = output.split("Job stats:", 1)[1]
    counts = {}
    for line in block.splitlines()[3:]:
        match = re.fullmatch(r"(\w+)\s+(\d+)", line.strip())
        if not match:
            break
        counts[match.group(1)] = int(match.group(2))
    counts.pop("total", None)
    return counts


def expected_counts(config: dict) -> dict[str, int]:
    """The grid as the config states it: one job per divergence x dataset x seed (+ baselines)."""
    toy, images = config["toy"], config["images"]
    toy_divergences, toy_seeds = len(toy["divergences"]), len(toy["seeds"])
    optima = toy_divergences + (0 if "kl" in toy["divergences"] else 1)
    datasets, seeds = len(images["datasets"]), len(images["seeds"])
    image_runs = (
        datasets
        * seeds
        * ((len(images["divergences"]) if "febm" in images["methods"] else 0) + ("cd" in images["methods"]))
    )
    return {
        "toy_optimum": optima,
        "toy_train": (toy_divergences + 2) * toy_seeds,  # f-EBM per divergence, plus CD and MLE on KL
        "toy_convergence": toy_divergences,
        "toy_stability": toy_divergences,
        "toy_table": 1,
        "toy_check": 1,  # after Table 5: fails the workflow if any run was recorded as failed
        "toy_figure": 4,
        "prepare_data": datasets,
        "fid_stats": datasets,
        "fetch_inception": 1,
        "gpu_check": 1,
        "train_images": image_runs,
        "sample_images": image_runs,
        "score_images": image_runs,
        "sample_grid": image_runs,
        "image_table": datasets,
        "report": 1,
        "all": 1,
    }


def write_overlay(path: Path, overlay: dict) -> Path:
    path.write_text(yaml.safe_dump(overlay))
    return path


def test_paper_config_plans_the_whole_grid_in_seconds(tmp_path, snakemake):
    started = time.perf_counter()
    status, output = snakemake(tmp_path, "--dry-run")
    elapsed = time.perf_counter() - started
    assert status == 0, output
    config = load_config([PAPER_CONFIG])
    assert job_counts(output) == expected_counts(config)
    assert expected_counts(config)["train_images"] == 2 * 5 * 1  # 2 datasets x (4 divergences + CD) x 1 seed
    # Measured on a 2-core AMD EPYC: 1.2-1.7 s cold (5 processes, load average up to 5), 1.8-2.1 s inside
    # pytest (3 runs). 15 s leaves room for a slower, shared CI core and still catches a planning blow-up.
    assert elapsed < 15.0, f"planning the paper grid took {elapsed:.1f} s"


def test_grid_follows_the_config_not_the_code(tmp_path, snakemake):
    overlay = {
        "toy": {"divergences": ["reverse_kl", "alpha_0.5"], "seeds": [3, 4, 5]},
        "images": {
            "datasets": ["celeba32"],
            "methods": ["febm"],
            "divergences": ["kl", "pearson_x2"],
            "seeds": [7, 8],
        },
    }
    status, output = snakemake(
        tmp_path, "--dry-run", "--configfile", str(write_overlay(tmp_path / "o.yaml", overlay))
    )
    assert status == 0, output
    counts = job_counts(output)
    assert counts == expected_counts(load_config([PAPER_CONFIG, tmp_path / "o.yaml"]))
    assert counts["train_images"] == 1 * 2 * 2 and counts["image_table"] == 1
    assert "results/tables/table1.csv" not in output  # CIFAR-10 is not configured


def test_named_targets_are_listed(tmp_path, snakemake):
    status, output = snakemake(tmp_path, "--list-target-rules")
    assert status == 0, output
    listed = {line.split()[0] for line in output.splitlines() if line.strip()}
    assert set(NAMED_TARGETS) <= listed


def test_one_table_builds_only_what_it_needs_and_the_resolved_config_is_stable(tmp_path, snakemake):
    status, output = snakemake(tmp_path, "--dry-run", "table5")
    assert status == 0, output
    assert set(job_counts(output)) == {"toy_optimum", "toy_train", "table5", "toy_table", "toy_check"}
    resolved = tmp_path / "results" / "config" / "resolved.yaml"
    assert yaml.safe_load(resolved.read_text()) == load_config([PAPER_CONFIG])  # every default filled
    written = resolved.stat().st_mtime_ns
    assert snakemake(tmp_path, "--dry-run", "table5")[0] == 0
    assert resolved.stat().st_mtime_ns == written  # unchanged content is not rewritten


@pytest.mark.parametrize(
    ("overlay", "key", "message"),
    [
        ({"toy": {"divergences": ["kl", "bogus"]}}, "toy.divergences.1", "'bogus' does not match"),
        ({"images": {"datasets": ["cifar10", "mnist"]}}, "images.datasets.1", "'mnist' is not one of"),
        ({"toy": {"seedz": [1]}}, "config key toy", "'seedz' was unexpected"),
        (
            {"images": {"cifar10": {"training": {"lr": -0.1}}}},
            "images.cifar10.training.lr",
            "less than or equal to the minimum of 0",
        ),
        ({"toy": {"seeds": [-1]}}, "toy.seeds.0", "-1 is less than the minimum of 0"),
        ({"images": {"seeds": []}}, "images.seeds", "should be non-empty"),
        ({"toy": {"divergences": ["alpha_1"]}}, "toy.divergences", "alpha must be"),
    ],
)
def test_bad_config_fails_before_any_job_naming_the_key(tmp_path, snakemake, overlay, key, message):
    status, output = snakemake(
        tmp_path, "--cores", "1", "--configfile", str(write_overlay(tmp_path / "bad.yaml", overlay))
    )
    assert status != 0
    assert key in output and message in output, output
    assert not (tmp_path / "results").exists()  # not even the resolved config was written


def test_paper_config_file_equals_the_schema_defaults():
    # config/config.yaml documents the paper; the schema's defaults must say the same thing.
    assert load_config([PAPER_CONFIG]) == validate({})


@pytest.mark.parametrize("preset", ["quick", "smoke"])
def test_presets_are_valid_overlays(preset):
    config = load_config([PAPER_CONFIG, REPO / "config" / f"{preset}.yaml"])
    assert config["preset"] == preset


def test_slurm_profile_plans_gpu_jobs_with_account_from_the_environment(tmp_path, snakemake, monkeypatch):
    monkeypatch.setenv("FEBM_SLURM_ACCOUNT", "proj42")
    monkeypatch.setenv("FEBM_SLURM_GPU_PARTITION", "gpu-a100")
    monkeypatch.delenv("FEBM_SLURM_PARTITION", raising=False)
    status, output = snakemake(
        tmp_path,
        "--dry-run",
        "--profile",
        str(REPO / "profiles" / "slurm"),
        "--configfile",
        str(REPO / "config" / "smoke.yaml"),
    )
    assert status == 0, output
    jobs = output.split("\nrule ")
    train = next(job for job in jobs if job.startswith("train_images:"))
    assert "gpu=1" in train and "slurm_account=proj42" in train and "slurm_partition=gpu-a100" in train
    assert "runtime=15" in train  # attempt 1; the profile multiplies by attempt on retries
    toy = next(job for job in jobs if job.startswith("toy_train:"))
    assert "gpu=" not in toy and "slurm_partition=," in toy  # unset partition: the cluster default


def test_local_gpu_profile_serialises_gpu_jobs(tmp_path, snakemake):
    status, output = snakemake(
        tmp_path,
        "--dry-run",
        "--profile",
        str(REPO / "profiles" / "local-gpu"),
        "--configfile",
        str(REPO / "config" / "smoke.yaml"),
    )
    assert status == 0, output
    profile = yaml.safe_load((REPO / "profiles" / "local-gpu" / "profile.yaml").read_text())
    assert profile["resources"] == {"gpu": 1}
    assert "gpu=1" in output


def test_config_readme_lists_every_key_of_the_schema():
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "config_docs", REPO / "workflow" / "scripts" / "config_docs.py"
    )
    config_docs = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(config_docs)
    assert config_docs.main(["--check"]) == 0, "run: python workflow/scripts/config_docs.py"
    readme = (REPO / "config" / "README.md").read_text()
    schema = yaml.safe_load((REPO / "febm" / "schemas" / "config.schema.yaml").read_text())
    for key, _ in config_docs.leaf_keys(schema, schema):
        assert f"`{key}`" in readme
