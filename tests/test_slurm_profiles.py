"""The SLURM profiles without a cluster: what each job asks for, and the checks that stop a run before
it submits a job the cluster must refuse.

`sinfo` and `sbatch` are small fake scripts here (the real cluster run is tests/slurm/run_slurm_smoke.sh,
a CI step of its own): `sinfo` describes a cluster, `sbatch --test-only` answers as told, and a real `sbatch` records that it
was called and fails.
Snakemake runs in-process, as in tests/test_workflow_dryrun.py.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
from importlib.metadata import version
from pathlib import Path

import pytest
import yaml
from packaging.specifiers import SpecifierSet

REPO = Path(__file__).resolve().parents[1]
SMOKE = str(REPO / "config" / "smoke.yaml")
GPU_RULES = ["gpu_check", "train_images", "sample_images", "score_images", "fid_stats"]
GPU_CHECK_TARGET = "results/images/gpu_check.json"


@pytest.fixture
def snakemake(capfd):
    """Run the repository's workflow in `workdir`; return (status, output)."""
    import snakemake.cli

    def run(workdir: Path, *args: str) -> tuple[int, str]:
        capfd.readouterr()
        cwd = os.getcwd()
        status = 0
        try:
            with contextlib.chdir(REPO):
                snakemake.cli.main(
                    ["--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir), *args]
                )
        except SystemExit as exit_:
            status = exit_.code if isinstance(exit_.code, int) else 1
        finally:
            os.chdir(cwd)
        captured = capfd.readouterr()
        return status, captured.out + captured.err

    return run


@pytest.fixture
def slurm_env(monkeypatch):
    for name in ("FEBM_SLURM_ACCOUNT", "FEBM_SLURM_PARTITION", "FEBM_SLURM_GPU_PARTITION"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def planned_resources(output: str) -> dict[str, dict[str, str]]:
    """rule -> its `resources:` line of a dry run, as a dict (the first job of each rule)."""
    plans = {}
    for block in re.split(r"\n(?=(?:local)?rule \w+:)", output):
        match = re.match(r"(?:local)?rule (\w+):", block)
        line = re.search(r"^\s+resources: (.*)$", block, re.M)
        if match and line and match.group(1) not in plans:
            plans[match.group(1)] = dict(item.split("=", 1) for item in line.group(1).split(", "))
    return plans


def profile(name: str) -> dict:
    return yaml.safe_load((REPO / "profiles" / name / "profile.yaml").read_text())


def test_smoke_jobs_ask_for_what_they_use_and_gpu_jobs_go_to_the_gpu_partition(
    tmp_path, snakemake, slurm_env
):
    slurm_env.setenv("FEBM_SLURM_ACCOUNT", "proj42")
    slurm_env.setenv("FEBM_SLURM_PARTITION", "short")
    status, output = snakemake(
        tmp_path, "--dry-run", "--profile", str(REPO / "profiles" / "slurm"), "--configfile", SMOKE
    )
    assert status == 0, output[-3000:]
    plans = planned_resources(output)
    for rule in GPU_RULES:
        # measured: every smoke job stays under 1.3 GB; FEBM_SLURM_GPU_PARTITION unset -> FEBM_SLURM_PARTITION
        assert plans[rule]["gpu"] == "1" and int(plans[rule]["mem_mb"]) <= 2000, (rule, plans[rule])
        assert int(plans[rule]["runtime"]) <= 15 and plans[rule]["slurm_partition"] == "short", plans[rule]
        assert plans[rule]["slurm_account"] == "proj42"
    assert "gpu" not in plans["toy_train"] and plans["toy_train"]["slurm_partition"] == "short"


def test_paper_jobs_ask_for_paper_scale(tmp_path, snakemake, slurm_env):
    slurm_env.setenv("FEBM_SLURM_GPU_PARTITION", "gpu-a100")
    target = "results/images/runs/cifar10/febm/jensen_shannon/seed0/model.pt"
    status, output = snakemake(tmp_path, "--dry-run", "--profile", str(REPO / "profiles" / "slurm"), target)
    assert status == 0, output[-3000:]
    train = planned_resources(output)["train_images"]
    # the original's global batch: 4 torchrun processes x 128 images, one GPU and 6 GB of host memory each
    # (4.4 GB measured per process on CPU, benchmarks/paper_memory.py)
    assert train["gpu"] == "4" and train["slurm_partition"] == "gpu-a100"
    assert int(train["mem_mb"]) == 4 * 6000 and int(train["runtime"]) >= 1440, train
    assert "torchrun --standalone --nproc_per_node=4 -m febm train-images" in output


def test_the_paper_preset_trains_with_global_batch_512_either_way(tmp_path, snakemake, slurm_env):
    from febm.config import load_config
    from febm.images.run_outputs import describe_scale, parallel_record
    from febm.images.training import TrainSettings

    base = load_config([REPO / "config" / "config.yaml"])
    one_process = tmp_path / "one_process.yaml"
    one_process.write_text("images: {cifar10: {training: {parallel: {launch: one_process}}}}\n")
    for config, world_size in [(base, 4), (load_config([REPO / "config" / "config.yaml", one_process]), 1)]:
        settings = TrainSettings.from_config(
            config["images"]["cifar10"], method="febm", divergence="kl", seed=0
        )
        record = parallel_record(settings, world_size)
        assert (record["global_batch"], record["replay_chains"]) == (512, 40000), record
        assert describe_scale(config, settings, world_size) == "paper"
    assert describe_scale(base, settings, 2).startswith("reduced: global batch 1024")  # a wrong process count

    target = "results/images/runs/cifar10/febm/jensen_shannon/seed0/model.pt"
    status, output = snakemake(
        tmp_path / "work", target, "--dry-run", "--profile", str(REPO / "profiles" / "slurm"), "--configfile",
        str(REPO / "config" / "config.yaml"), str(one_process),
    )  # fmt: skip
    assert status == 0, output[-3000:]
    train = planned_resources(output)["train_images"]
    assert train["gpu"] == "1" and "torchrun" not in output
    assert int(train["mem_mb"]) == 4 * 6000  # 4 processes' worth in one (13.3 GB measured on CPU)


def test_cpu_profile_drops_only_the_gpu_request(tmp_path, snakemake, slurm_env):
    status, output = snakemake(
        tmp_path, "--dry-run", "--profile", str(REPO / "profiles" / "slurm-cpu"), "--configfile", SMOKE
    )
    assert status == 0, output[-3000:]
    plans = planned_resources(output)
    for rule in GPU_RULES:
        assert plans[rule].get("gpu", "0") == "0", (rule, plans[rule])
        assert plans[rule]["mem_mb"] == "2000" and int(plans[rule]["runtime"]) > 0, plans[rule]


def test_the_two_slurm_profiles_differ_only_in_the_gpu_request():
    gpu, cpu = profile("slurm"), profile("slurm-cpu")
    assert {key: value for key, value in gpu.items() if key != "set-resources"} == {
        key: value for key, value in cpu.items() if key != "set-resources"
    }
    for rule in GPU_RULES:
        assert cpu["set-resources"][rule] == {"gpu": 0}
        assert "FEBM_SLURM_GPU_PARTITION" in gpu["set-resources"][rule]["slurm_partition"]
    # squeue: works with and without an accounting database (sacct hangs the run without one)
    assert gpu["slurm-status-command"] == "squeue"


def test_slurm_plugin_pin_matches_the_installed_plugin_and_the_profile():
    pyproject = (REPO / "pyproject.toml").read_text()
    pin = re.search(r'"snakemake-executor-plugin-slurm([^"]*)"', pyproject).group(1)
    assert version("snakemake-executor-plugin-slurm") in SpecifierSet(pin)
    header = (REPO / "profiles" / "slurm" / "profile.yaml").read_text().splitlines()[0]
    for bound in SpecifierSet(pin):  # e.g. >=2.8 and <3: the profile's header names the same range
        assert f"{bound.operator} {bound.version}" in header, (pin, header)


# --- the checks before submission, against a fake cluster --------------------------------------


def fake_cluster(tmp_path: Path, nodes: list[str]) -> Path:
    """A folder with `sinfo` printing NODES (sinfo --Node --format=%R|%G|%m|%l lines), `squeue`
    printing nothing and `sbatch` that records its call in sbatch.calls and fails."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(parents=True)
    scripts = {
        "sinfo": "cat <<'EOF'\n" + "\n".join(nodes) + "\nEOF\n",
        "squeue": "exit 0\n",
        # --test-only (the run's check before submitting): refuses with $FAKE_SBATCH_REFUSAL if set;
        # a real submission is recorded, then refused
        "sbatch": (
            'case " $* " in *" --test-only "*)\n'
            f'  echo "$@" >> {tmp_path}/sbatch.tests\n'
            '  if [ -n "$FAKE_SBATCH_REFUSAL" ]; then echo "sbatch: error: $FAKE_SBATCH_REFUSAL" >&2; exit 1; fi\n'
            '  echo "sbatch: Job 1 to start at 2026-12-02T00:00:00 on node1" >&2; exit 0;;\nesac\n'
            f'echo "$@" >> {tmp_path}/sbatch.calls\necho "sbatch: error: refused" >&2\nexit 1\n'
        ),
    }
    for name, body in scripts.items():
        path = bin_dir / name
        path.write_text("#!/bin/sh\n" + body)
        path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return bin_dir


def run_on_fake_cluster(tmp_path, snakemake, monkeypatch, nodes, profile_name="slurm"):
    bin_dir = fake_cluster(tmp_path, nodes)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    work = tmp_path / "work"
    work.mkdir(parents=True)
    status, output = snakemake(
        work,
        GPU_CHECK_TARGET,
        "--profile",
        str(REPO / "profiles" / profile_name),
        "--configfile",
        SMOKE,
        # the plugin's status thread sleeps this long before the first check, and exiting waits for it
        "--slurm-init-seconds-before-status-checks",
        "1",
    )
    return status, output, (tmp_path / "sbatch.calls").exists()


def test_a_cluster_without_gpus_stops_the_run_before_any_submission(tmp_path, snakemake, slurm_env):
    status, output, submitted = run_on_fake_cluster(
        tmp_path, snakemake, slurm_env, ["node1|(null)|64000|1-00:00:00"]
    )
    assert status != 0 and not submitted, output[-3000:]
    assert "gpu_check asks for gpu=1" in output and "profiles/slurm-cpu" in output, output[-3000:]
    assert "Trying to restart" not in output  # no retry of what cannot succeed


def test_too_little_memory_names_mem_mb_and_a_missing_partition_names_its_variable(
    tmp_path, snakemake, slurm_env
):
    status, output, submitted = run_on_fake_cluster(
        tmp_path, snakemake, slurm_env, ["node1|gpu:1|1000|1:00:00"]
    )
    assert status != 0 and not submitted, output[-3000:]
    assert "mem_mb=2000" in output and "largest node in any partition has 1000 MB" in output, output[-3000:]

    slurm_env.setenv("FEBM_SLURM_GPU_PARTITION", "a100")
    status, output, submitted = run_on_fake_cluster(
        tmp_path / "again", snakemake, slurm_env, ["node1|gpu:1|64000|1:00:00"]
    )
    assert status != 0 and not submitted
    assert "partition 'a100' (from FEBM_SLURM_GPU_PARTITION) is not on this cluster" in output, output[-3000:]


@pytest.mark.parametrize(
    ("refusal", "named"),
    [
        ("Batch job submission failed: Invalid account or account/partition combination specified",
         "set FEBM_SLURM_ACCOUNT"),
        ("Batch job submission failed: Job violates accounting/QOS policy (job submit limit, user's size "
         "and/or time limits)", "the QOS"),
    ],
)  # fmt: skip
def test_a_refused_account_or_qos_stops_the_run_before_any_submission(
    tmp_path, snakemake, slurm_env, refusal, named
):
    slurm_env.setenv("FEBM_SLURM_ACCOUNT", "nosuchproject")
    slurm_env.setenv("FAKE_SBATCH_REFUSAL", refusal)
    status, output, submitted = run_on_fake_cluster(
        tmp_path, snakemake, slurm_env, ["node1|gpu:1|64000|1-00:00:00"]
    )
    assert status != 0 and not submitted, output[-3000:]
    assert refusal.removeprefix("Batch job submission failed: ") in output and named in output, output[-3000:]
    assert "--account=nosuchproject" in output and "Nothing was submitted" in output
    assert "Trying to restart" not in output  # no retry of what cannot succeed
    tested = (tmp_path / "sbatch.tests").read_text()
    assert "--test-only" in tested and "--gpus=1" in tested and "--account=nosuchproject" in tested
