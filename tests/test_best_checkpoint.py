"""Best-IS checkpoint selection (evaluation.checkpoint_selection: best_is): keeps the better checkpoint,
survives kill and resume, leaves training bit-identical, and evaluation reads model_best.pt."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from febm import checkpoints
from febm.config import validate
from febm.evaluation.tables import checkpoint_label
from febm.images.checkpoint import load_energy_model
from febm.images.replay import load_replay_chains
from febm.images.run import RunSetupError, train_images
from febm.images.training import ImageTrainer

pytestmark = pytest.mark.usefixtures("single_torch_thread")

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def standin_inception(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from febm.evaluation.weights import write_standin

    return write_standin(tmp_path_factory.mktemp("inception") / "inception.pth", seed=1)


def _config(selection: str = "best_is", iterations: int = 6) -> dict:
    return validate(
        {
            "preset": "smoke",
            "evaluation": {
                "checkpoint_selection": selection,
                "best_checkpoint": {"interval": 2, "samples": 5},
            },
            "images": {
                "standin_data": True,
                "device": "cpu",
                "cifar10": {
                    "network": {"num_filters": 8},
                    "training": {
                        "iterations": iterations,
                        "batch_size": 8,
                        "warmup_iterations": 1,
                        "checkpoint_interval": 2,
                        "keep_checkpoints": 10,
                        "sample_interval": 100,
                    },
                    "sampler": {"steps": 2},
                    "replay": {"capacity": 64},
                },
            },
        }
    )


class ScriptedScorer:
    """Returns the scripted scores in call order and records what it was shown."""

    def __init__(self, scores: list[float]) -> None:
        self.scores = list(scores)
        self.shown: list[tuple[tuple[int, ...], np.dtype]] = []

    def __call__(self, images: np.ndarray, labels: np.ndarray) -> dict[str, float]:
        self.shown.append((images.shape, images.dtype))
        return {"inception_score": self.scores.pop(0)}


def _train(config, data, folder: Path, scorer=None):
    return train_images(
        config,
        dataset="cifar10",
        method="febm",
        divergence="jensen_shannon",
        seed=5,
        data_path=data,
        out_dir=folder / "out",
        checkpoint_dir=folder / "ckpt",
        best_scorer=scorer,
    )


def _same(a, b) -> bool:
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[key], b[key]) for key in a)
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, torch.Tensor):
        return torch.equal(a, b)
    return a == b


def test_a_score_that_improves_then_worsens_keeps_the_better_checkpoint(cifar10_standin_npz, tmp_path):
    scorer = ScriptedScorer([1.0, 3.0, 2.0])  # iterations 2, 4, 6
    metrics = _train(_config(), cifar10_standin_npz, tmp_path, scorer)
    assert [shape for shape, _ in scorer.shown] == [(5, 32, 32, 3)] * 3  # newest 5 chains, uint8 NHWC
    assert all(dtype == np.uint8 for _, dtype in scorer.shown)
    assert metrics["checkpoint_selection"] == "best_is"
    assert metrics["best_checkpoint"]["iteration"] == 4 and metrics["best_checkpoint"]["score"] == 3.0

    out = tmp_path / "out"
    best_model, best_meta = load_energy_model(out / "model_best.pt")
    final_model, final_meta = load_energy_model(out / "model.pt")
    assert best_meta["checkpoint_selection"] == "best_is" and best_meta["iterations"] == 4
    assert final_meta["checkpoint_selection"] == "final" and final_meta["iterations"] == 6
    # model_best.pt holds the network of iteration 4 (its training state), not the final one.
    state_4 = checkpoints.read_state(tmp_path / "ckpt", 4, 0)
    assert _same(best_model.state_dict(), state_4["energy"])
    assert not _same(best_model.state_dict(), final_model.state_dict())
    # Its chains, for the replay protocol, are the buffer of iteration 4.
    chains = load_replay_chains(out / "replay_best.npz")
    assert chains.iteration == 4 and len(chains.images) == len(state_4["replay"]["images"])
    # The live copy in the checkpoint folder is the same network.
    assert _same(load_energy_model(tmp_path / "ckpt" / "model_best.pt")[0].state_dict(), state_4["energy"])

    label = checkpoint_label({"checkpoint_selection": "best_is", "checkpoint_iteration": 4})
    assert label == "best_is (iteration 4)"
    assert checkpoint_label({"checkpoint": "x/model_best.pt", "training_iterations": 4}) == label
    assert checkpoint_label({"checkpoint": "x/model.pt", "training_iterations": 6}) == "final (iteration 6)"


def test_kill_and_resume_keep_the_best_and_training_stays_bit_identical(
    cifar10_standin_npz, tmp_path, monkeypatch
):
    config = _config()
    _train(config, cifar10_standin_npz, tmp_path / "straight", ScriptedScorer([1.0, 3.0, 2.0]))

    # Killed after the state of iteration 4 (which holds the best, 3.0 at 4) is on disk.
    real_step = ImageTrainer.step

    def killed_at_five(self):
        if self.iteration == 5:
            raise KeyboardInterrupt("simulated kill")
        return real_step(self)

    scorer = ScriptedScorer([1.0, 3.0, 2.0])
    monkeypatch.setattr(ImageTrainer, "step", killed_at_five)
    with pytest.raises(KeyboardInterrupt):
        _train(config, cifar10_standin_npz, tmp_path / "resumed", scorer)
    monkeypatch.setattr(ImageTrainer, "step", real_step)
    assert checkpoints.read_state(tmp_path / "resumed" / "ckpt", 4, 0)["best"]["iteration"] == 4
    metrics = _train(config, cifar10_standin_npz, tmp_path / "resumed", scorer)
    assert metrics["resumed_from_iteration"] == 4 and not scorer.scores
    # The resumed run scored only iteration 6 (2.0) and kept the restored best: a restart would take 6.
    assert metrics["best_checkpoint"]["iteration"] == 4 and metrics["best_checkpoint"]["score"] == 3.0

    straight = checkpoints.read_state(tmp_path / "straight" / "ckpt", 6, 0)
    resumed = checkpoints.read_state(tmp_path / "resumed" / "ckpt", 6, 0)
    assert _same(straight, resumed)  # networks, optimisers, buffer, generator and the best
    for name in ("model_best.pt", "model.pt"):
        a = load_energy_model(tmp_path / "straight" / "out" / name)[0].state_dict()
        assert _same(a, load_energy_model(tmp_path / "resumed" / "out" / name)[0].state_dict())

    # Scoring draws no random numbers: the same run without selection ends in the same training state.
    _train(_config("final"), cifar10_standin_npz, tmp_path / "plain")
    plain = checkpoints.read_state(tmp_path / "plain" / "ckpt", 6, 0)
    assert "best" not in plain
    assert _same({k: v for k, v in straight.items() if k not in ("best", "settings_key")},
                 {k: v for k, v in plain.items() if k != "settings_key"})  # fmt: skip
    assert straight["settings_key"] != plain["settings_key"]  # best-IS runs are runs of their own
    assert not (tmp_path / "plain" / "out" / "model_best.pt").exists()


def test_a_run_shorter_than_one_interval_still_gets_its_first_scored_checkpoint(
    cifar10_standin_npz, tmp_path
):
    config = _config(iterations=3)
    config["evaluation"]["best_checkpoint"]["interval"] = 100
    metrics = _train(config, cifar10_standin_npz, tmp_path, ScriptedScorer([0.5]))
    assert metrics["best_checkpoint"]["iteration"] == 3 and metrics["best_checkpoint"]["score"] == 0.5
    assert load_energy_model(tmp_path / "out" / "model_best.pt")[1]["iterations"] == 3


def test_best_is_without_a_scorer_is_a_one_line_setup_error(cifar10_standin_npz, tmp_path):
    with pytest.raises(RunSetupError, match=r"--inception-weights .* or --classifier"):
        _train(_config(), cifar10_standin_npz, tmp_path)


def test_the_inception_scorer_is_the_one_inception_score_with_one_split(standin_inception):
    from febm.evaluation.extract import run_inception
    from febm.evaluation.inception import load_fid_inception
    from febm.evaluation.metrics import inception_score
    from febm.images.monitor import InceptionScorer

    weights = standin_inception
    images = np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    evaluation = validate({})["evaluation"]
    scorer = InceptionScorer(weights, evaluation, device="cpu")
    assert scorer.standin_weights
    score = scorer(images, np.zeros(4, dtype=np.int64))["inception_score"]
    model = load_fid_inception(weights, "cpu", preprocessing=evaluation["inception"]["preprocessing"])
    expected = inception_score(run_inception(images, model, progress=False).logits, splits=1)[0]
    assert np.isfinite(score) and score >= 1.0 and score == pytest.approx(expected, rel=1e-6)


def test_dry_run_with_best_is_samples_model_best(tmp_path, capfd):
    import snakemake.cli
    import yaml

    overlay = tmp_path / "best.yaml"
    overlay.write_text(
        yaml.safe_dump(
            {
                "toy": {"enabled": False},
                "evaluation": {"checkpoint_selection": "best_is"},
                "images": {
                    "datasets": ["cifar10", "fashion_mnist"],
                    "methods": ["febm"],
                    "divergences": ["kl"],
                },
            }
        )
    )

    def dry_run(*extra: str) -> str:
        capfd.readouterr()
        with contextlib.chdir(REPO), pytest.raises(SystemExit) as exit_:
            snakemake.cli.main(
                ["--snakefile", str(REPO / "Snakefile"), "--directory", str(tmp_path), "-n", "-p", *extra]
            )
        os.chdir(REPO)
        output = "".join(capfd.readouterr())
        assert exit_.value.code in (0, None), output
        return output

    output = dry_run("--configfile", str(overlay))
    samples = [line for line in output.splitlines() if line.startswith("Shell command: febm sample ")]
    assert len(samples) == 2 and all("/model_best.pt " in line for line in samples)
    # (CIFAR-10 at paper settings trains under torchrun: "Shell command: torchrun ... -m febm train-images")
    train = [
        line
        for line in output.splitlines()
        if line.startswith("Shell command: ") and " train-images " in line
    ]
    cifar = next(line for line in train if "--dataset cifar10" in line)
    fashion = next(line for line in train if "--dataset fashion_mnist" in line)
    assert "--inception-weights " in cifar and "--classifier " not in cifar
    assert "--classifier " in fashion and "--inception-weights " not in fashion

    overlay.write_text(overlay.read_text().replace("best_is", "final"))
    output = dry_run("--configfile", str(overlay))
    assert "model_best" not in output and "--inception-weights" not in output


def test_train_images_command_selects_with_the_inception_score(
    cifar10_standin_npz, standin_inception, tmp_path
):
    import json

    import yaml

    from febm.cli import main

    config = _config(iterations=2)
    config_file = tmp_path / "config.yaml"
    config_file.write_text(yaml.safe_dump(config))
    weights = standin_inception
    arguments = ["--dataset", "cifar10", "--method", "cd", "--divergence", "kl", "--seed", "1"]
    folders = ["--data", str(cifar10_standin_npz), "--out-dir", str(tmp_path / "out")]
    folders += ["--checkpoint-dir", str(tmp_path / "ckpt"), "--inception-weights", str(weights)]
    assert main(["train-images", "--config", str(config_file), *arguments, *folders]) == 0
    best = json.loads((tmp_path / "out" / "metrics.json").read_text())["best_checkpoint"]
    assert best["iteration"] == 2 and best["metric"] == "inception_score" and best["score"] >= 1.0
    assert (
        load_energy_model(tmp_path / "out" / "model_best.pt")[1]["best_checkpoint"]["score"] == best["score"]
    )
