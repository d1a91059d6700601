"""Run identity (febm.runspec): the run list and which settings each stage's key covers."""

from __future__ import annotations

import copy

from febm.config import validate
from febm.runspec import RunSpec, checkpoint_dir, image_runs, resume_key, settings_key, toy_runs


def _edited(config: dict, path: str, value) -> dict:
    edited = copy.deepcopy(config)
    *parents, leaf = path.split(".")
    node = edited
    for key in parents:
        node = node[key]
    node[leaf] = value
    return validate(edited)


BASE = validate({"preset": "quick"})


def test_the_grid_is_every_divergence_and_seed_plus_the_baselines():
    config = _edited(_edited(BASE, "toy.divergences", ["kl", "jensen_shannon"]), "toy.seeds", [0, 1])
    names = [run.name for run in toy_runs(config)]
    assert names == [
        "febm/kl/seed0", "febm/kl/seed1", "febm/jensen_shannon/seed0", "febm/jensen_shannon/seed1",
        "cd/kl/seed0", "cd/kl/seed1", "mle/kl/seed0", "mle/kl/seed1",
    ]  # fmt: skip
    images = _edited(_edited(BASE, "images.divergences", ["reverse_kl"]), "images.datasets", ["celeba32"])
    assert [run.run_dir for run in image_runs(images)] == [
        "images/runs/celeba32/febm/reverse_kl/seed0", "images/runs/celeba32/cd/kl/seed0",
    ]  # fmt: skip
    assert RunSpec("toy", "mixture", "cd", "kl", 3).job_name == "cd_kl_seed3"


def test_growing_the_grid_changes_no_run_key():
    grown = _edited(_edited(BASE, "toy.seeds", [0, 1, 2, 3, 4, 5]), "images.divergences", ["kl"])
    for stage in ("toy_optimum", "toy_train", "toy_convergence", "toy_stability"):
        assert settings_key(grown, stage) == settings_key(BASE, stage), stage
    for dataset in ("cifar10", "celeba32"):
        assert settings_key(grown, "train_images", dataset) == settings_key(BASE, "train_images", dataset)


def test_each_stage_key_covers_what_changes_its_output():
    figures = _edited(BASE, "toy.figures.dpi", 72)
    assert settings_key(figures, "toy_figure") != settings_key(BASE, "toy_figure")
    assert settings_key(figures, "toy_train") == settings_key(BASE, "toy_train")
    trained = _edited(BASE, "toy.train.h_lr", 0.02)
    assert all(settings_key(trained, s) != settings_key(BASE, s) for s in ("toy_train", "toy_convergence"))
    assert settings_key(trained, "toy_optimum") == settings_key(BASE, "toy_optimum")
    mixture = _edited(BASE, "toy.mixture.means", [-1.0, 2.5])
    assert settings_key(mixture, "toy_optimum") != settings_key(BASE, "toy_optimum")
    cifar = _edited(BASE, "images.cifar10.sampler.steps", 7)
    assert settings_key(cifar, "train_images", "cifar10") != settings_key(BASE, "train_images", "cifar10")
    assert settings_key(cifar, "train_images", "celeba32") == settings_key(BASE, "train_images", "celeba32")
    protocol = _edited(BASE, "evaluation.plain_protocol.steps", 9)
    assert settings_key(protocol, "sample_images") != settings_key(BASE, "sample_images")
    assert settings_key(protocol, "train_images", "cifar10") == settings_key(BASE, "train_images", "cifar10")
    preset = _edited(BASE, "preset", "smoke")
    assert settings_key(preset, "toy_train") != settings_key(BASE, "toy_train")


def test_a_longer_run_resumes_from_the_same_checkpoint_folder():
    run = image_runs(BASE)[0]
    longer = _edited(BASE, f"images.{run.dataset}.training.iterations", 10**6)
    assert settings_key(longer, "train_images", run.dataset) != settings_key(
        BASE, "train_images", run.dataset
    )
    assert resume_key(longer, run) == resume_key(BASE, run)
    assert checkpoint_dir(longer, run) == checkpoint_dir(BASE, run)
    wider = _edited(BASE, f"images.{run.dataset}.network.num_filters", 4)
    assert checkpoint_dir(wider, run) != checkpoint_dir(BASE, run)
    other_seed = RunSpec(run.study, run.dataset, run.method, run.divergence, run.seed + 1)
    assert resume_key(BASE, other_seed) != resume_key(BASE, run)
