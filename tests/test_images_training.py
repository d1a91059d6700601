"""Image trainers: resume, checkpoints, stopping rules, the optimiser, and a learning check."""

from __future__ import annotations

import csv
import json

import pytest
import torch

from febm import checkpoints
from febm.cli import main
from febm.config import validate
from febm.images import checkpoint as ckpt
from febm.images import training
from febm.images.distributed import DeviceError
from febm.images.run import train_images
from febm.images.training import ImageTrainer, TrainingDivergedError, TrainSettings
from febm.optim import ClippedAdam

pytestmark = pytest.mark.usefixtures("single_torch_thread")


def _config(iterations: int = 6, preset: str = "smoke", **training_overrides) -> dict:
    training_section = {
        "iterations": iterations,
        "batch_size": 8,
        "warmup_iterations": 2,
        "checkpoint_interval": 3,
        "sample_interval": 3,
        **training_overrides,
    }
    return validate(
        {
            "preset": preset,
            "images": {
                "standin_data": True,
                "device": "cpu",
                "cifar10": {
                    "network": {"num_filters": 8},
                    "training": training_section,
                    "sampler": {"steps": 3},
                    "replay": {"capacity": 64},
                },
            },
            "evaluation": {"checkpoint_selection": "final"},  # best-IS: tests/test_best_checkpoint.py
        }
    )


def _train(config, data, tmp_path, name, method="febm", divergence="jensen_shannon"):
    return train_images(
        config,
        dataset="cifar10",
        method=method,
        divergence=divergence,
        seed=3,
        data_path=data,
        out_dir=tmp_path / name / "out",
        checkpoint_dir=tmp_path / name / "ckpt",
    )


def _states_equal(a: dict, b: dict) -> bool:
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_states_equal(a[key], b[key]) for key in a)
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(_states_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, torch.Tensor):
        return torch.equal(a, b)
    return a == b


@pytest.mark.parametrize("method", ["febm", "dual"])
def test_resumed_run_continues_bit_identically(cifar10_standin_npz, tmp_path, monkeypatch, method):
    config = _config()
    _train(config, cifar10_standin_npz, tmp_path, "straight", method)

    real_step = ImageTrainer.step

    def crash_after_first_checkpoint(self):
        if self.iteration == 4:
            raise KeyboardInterrupt("simulated crash")
        return real_step(self)

    monkeypatch.setattr(ImageTrainer, "step", crash_after_first_checkpoint)
    with pytest.raises(KeyboardInterrupt):
        _train(config, cifar10_standin_npz, tmp_path, "resumed", method)
    monkeypatch.setattr(ImageTrainer, "step", real_step)
    assert checkpoints.saved_iterations(tmp_path / "resumed" / "ckpt") == [3]
    metrics = _train(config, cifar10_standin_npz, tmp_path, "resumed", method)
    assert metrics["resumed_from_iteration"] == 3

    straight = checkpoints.read_state(tmp_path / "straight" / "ckpt", 6, 0)
    resumed = checkpoints.read_state(tmp_path / "resumed" / "ckpt", 6, 0)
    assert _states_equal(straight, resumed)
    logs = [
        (tmp_path / name / "out" / "train_log.csv").read_text().splitlines()
        for name in ("straight", "resumed")
    ]
    strip_seconds = [[line.rsplit(",", 1)[0] for line in log] for log in logs]
    assert strip_seconds[0] == strip_seconds[1] and len(logs[0]) == 7

    # A truncated newest checkpoint falls back to the previous one; finishing again gives the same model.
    newest = checkpoints.state_path(tmp_path / "resumed" / "ckpt", 6, 0)
    newest.write_bytes(newest.read_bytes()[:1000])
    assert checkpoints.load_newest(tmp_path / "resumed" / "ckpt", straight["settings_key"])[0] == 3
    assert (newest.parent / (newest.name + ".damaged")).is_file()  # set aside, with a warning
    _train(config, cifar10_standin_npz, tmp_path, "resumed", method)
    assert _states_equal(straight, checkpoints.read_state(tmp_path / "resumed" / "ckpt", 6, 0))


def test_outputs_and_sample_command(cifar10_standin_npz, tmp_path):
    config_file = tmp_path / "config.yaml"
    import yaml

    config = _config(iterations=3, preset="smoke")
    config["evaluation"]["plain_protocol"].update({"steps": 2, "batch_size": 4})
    config_file.write_text(yaml.safe_dump(config))
    out, ckpt_dir = tmp_path / "out", tmp_path / "ckpt"
    args = ["train-images", "--config", str(config_file), "--dataset", "cifar10", "--method", "cd"]
    args += ["--divergence", "kl", "--seed", "0", "--data", str(cifar10_standin_npz)]
    assert main([*args, "--out-dir", str(out), "--checkpoint-dir", str(ckpt_dir)]) == 0
    assert {p.name for p in out.iterdir()} == {
        "model.pt",
        "metrics.json",
        "train_log.csv",
        "samples.png",
        "monitor.csv",
        "replay.npz",
    }
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("preset", "scale", "standin_data", "config_hash", "provenance", "wall_seconds"):
        assert key in metrics
    assert metrics["standin_data"] is True and metrics["preset"] == "smoke"
    payload = torch.load(out / "model.pt", weights_only=True)
    assert payload["network"] == {"num_filters": 8, "num_classes": 10, "image_channels": 3}
    model, meta = ckpt.load_energy_model(out / "model.pt", "cpu")
    assert meta["method"] == "cd" and meta["standin_data"] is True and model.conditional
    with pytest.raises(ckpt.CheckpointError, match="not a febm image energy model"):
        ckpt.load_energy_model(checkpoints.state_path(ckpt_dir, 3, 0), "cpu")
    with (out / "train_log.csv").open() as handle:
        assert [row["iteration"] for row in csv.DictReader(handle)] == ["0.0", "1.0", "2.0"]

    samples = tmp_path / "samples.npz"
    sample_args = ["sample", "--checkpoint", str(out / "model.pt"), "--n", "5", "--protocol", "plain"]
    assert main([*sample_args, "--out", str(samples), "--config", str(config_file)]) == 0
    import numpy as np

    with np.load(samples) as archive:
        assert archive["images"].shape == (5, 32, 32, 3) and archive["images"].dtype == np.uint8
        assert archive["labels"].shape == (5,)
    # The replay protocol continues the chains the run ended with, under the labels they were made for.
    replay_args = ["sample", "--checkpoint", str(out / "model.pt"), "--n", "5", "--protocol", "replay"]
    config["evaluation"]["replay_protocol"].update({"steps": 0})
    config_file.write_text(yaml.safe_dump(config))
    replayed = tmp_path / "replayed.npz"
    assert main([*replay_args, "--out", str(replayed), "--config", str(config_file)]) == 2  # no --replay
    replay_args += ["--replay", str(out / "replay.npz"), "--out", str(replayed), "--config", str(config_file)]
    assert main(replay_args) == 0
    with np.load(out / "replay.npz") as chains, np.load(replayed) as archive:
        buffer = {
            (image.tobytes(), int(label))
            for image, label in zip(chains["images"], chains["labels"], strict=True)
        }
        assert int(chains["iteration"]) == 3 and chains["images"].shape[1:] == (32, 32, 3)
        assert {
            (image.tobytes(), int(label))
            for image, label in zip(archive["images"], archive["labels"], strict=True)
        } <= buffer

    assert (
        main(
            [
                *args[:-2],
                "--divergence",
                "reverse_kl",
                "--seed",
                "0",
                "--data",
                "x",
                "--out-dir",
                "o",
                "--checkpoint-dir",
                "c",
            ]
        )
        == 2
    )


def test_exploding_energies_stop_and_keep_the_last_good_checkpoint(cifar10_standin_npz, tmp_path):
    _train(_config(iterations=3), cifar10_standin_npz, tmp_path, "run")
    kept = checkpoints.state_path(tmp_path / "run" / "ckpt", 3, 0).read_bytes()
    with pytest.raises(TrainingDivergedError, match=r"iteration 3.*last good checkpoint \(iteration 3\)"):
        _train(_config(iterations=6, energy_limit=1e-6), cifar10_standin_npz, tmp_path, "run")
    assert checkpoints.saved_iterations(tmp_path / "run" / "ckpt") == [3]
    assert checkpoints.state_path(tmp_path / "run" / "ckpt", 3, 0).read_bytes() == kept


def test_paper_scale_on_cpu_stops_at_once_naming_the_quick_preset(cifar10_standin_npz, tmp_path):
    with pytest.raises(DeviceError, match="quick preset"):
        _train(_config(preset="paper"), cifar10_standin_npz, tmp_path, "paper")
    assert not (tmp_path / "paper" / "ckpt").exists()


def test_one_sampler_run_per_iteration_unless_the_original_recipe_is_asked(cifar10_standin_npz, monkeypatch):
    from febm.images.data import load_cache

    data = load_cache(cifar10_standin_npz)
    calls = []
    real_langevin = training.langevin_with
    monkeypatch.setattr(training, "langevin_with", lambda *a, **k: calls.append(1) or real_langevin(*a, **k))
    for second_run, expected in ((False, 1), (True, 2)):
        config = _config(warmup_iterations=0, second_sampler_run=second_run)
        settings = TrainSettings.from_config(
            config["images"]["cifar10"], method="febm", divergence="kl", seed=0
        )
        trainer = ImageTrainer(settings, data)
        calls.clear()
        row = trainer.step()
        assert len(calls) == expected and "loss_h" in row and len(trainer.buffer) == 8


def test_dual_form_trains_a_critic_and_an_energy_that_never_sees_the_data(cifar10_standin_npz, monkeypatch):
    """Theorem 1's trainer: one sampler run, a critic step, then an E step whose loss has no data term."""
    from febm.images.data import load_cache

    data = load_cache(cifar10_standin_npz)
    config = _config(warmup_iterations=0)
    settings = TrainSettings.from_config(config["images"]["cifar10"], method="dual", divergence="kl", seed=0)
    trainer = ImageTrainer(settings, data)
    before = {
        name: [p.detach().clone() for p in network.parameters()]
        for name, network in (("energy", trainer.energy), ("critic", trainer.variational))
    }
    energy_losses = []
    real_loss = training.dual_energy_loss
    monkeypatch.setattr(
        training, "dual_energy_loss", lambda *a, **k: energy_losses.append(a) or real_loss(*a, **k)
    )
    calls = []
    real_langevin = training.langevin_with
    monkeypatch.setattr(training, "langevin_with", lambda *a, **k: calls.append(1) or real_langevin(*a, **k))
    row = trainer.step()
    assert len(calls) == 1 and len(trainer.buffer) == 8 and {"loss_h", "loss_e", "bound"} <= row.keys()
    ((_, e_neg, v_neg),) = energy_losses  # E's loss sees only the model samples' energies and rewards
    assert e_neg.shape == v_neg.shape == (8,) and e_neg.requires_grad and not v_neg.requires_grad
    for name, network in (("energy", trainer.energy), ("critic", trainer.variational)):
        changed = [not torch.equal(a, b) for a, b in zip(before[name], network.parameters(), strict=True)]
        assert any(changed), f"the {name} network was not updated"
    state = trainer.shared_state()
    assert {"energy", "variational", "optimiser_energy", "optimiser_variational"} <= state.keys()


def test_clipped_adam_clips_each_element_to_three_rms_plus_a_tenth():
    parameter = torch.nn.Parameter(torch.zeros(3))
    optimiser = ClippedAdam([parameter], lr=1e-3, betas=(0.0, 0.999), eps=1e-8)
    parameter.grad = torch.tensor([5.0, -0.05, -3.0])
    optimiser.step()  # step 1: v = 0, so the bound is 0.1
    v = optimiser.state[parameter]["exp_avg_sq"].clone()
    assert torch.allclose(v, 0.001 * torch.tensor([0.1, 0.05, 0.1]) ** 2)
    parameter.grad = torch.tensor([5.0, 5.0, 0.0])
    bound = 3 * torch.sqrt(v / (1 - 0.999**2)) + 0.1
    optimiser.step()
    expected_v = 0.999 * v + 0.001 * torch.minimum(torch.tensor([5.0, 5.0, 0.0]), bound) ** 2
    assert torch.allclose(optimiser.state[parameter]["exp_avg_sq"], expected_v)


def test_monitor_scores_the_buffer_without_changing_training_and_survives_a_resume(
    cifar10_standin_npz, tmp_path, monkeypatch
):
    import numpy as np

    calls = []

    def scorer(images, labels):
        calls.append(images.shape)
        assert images.dtype == np.uint8 and images.shape[-1] == 3 and len(labels) == len(images)
        return {"conditional_accuracy": float(images.mean()) / 255, "fid": 1.0, "inception_score": 2.0}

    config = _config(monitor_interval=2, monitor_samples=5)
    _train(_config(), cifar10_standin_npz, tmp_path, "plain")
    train_images(
        config, dataset="cifar10", method="febm", divergence="jensen_shannon", seed=3,
        data_path=cifar10_standin_npz, out_dir=tmp_path / "mon" / "out", checkpoint_dir=tmp_path / "mon" / "ckpt",
        scorer=scorer,
    )  # fmt: skip
    # Reading the buffer draws no random numbers: the monitored run ends in the same training state.
    plain_state = checkpoints.read_state(tmp_path / "plain" / "ckpt", 6, 0)
    assert _states_equal(plain_state, checkpoints.read_state(tmp_path / "mon" / "ckpt", 6, 0))
    rows = (tmp_path / "mon" / "out" / "monitor.csv").read_text().splitlines()
    assert rows[0] == "iteration,conditional_accuracy,fid,inception_score"
    # Warm-up (2 iterations) leaves the buffer empty, so the first row is after iteration 4.
    assert [row.split(",")[0] for row in rows[1:]] == ["4", "6"] and calls[0] == (5, 32, 32, 3)

    # Killed during iteration 4 (checkpoint at 3): the resumed run redoes the rows of 4 and 6, once each.
    real_step = ImageTrainer.step

    def crash(self):
        if self.iteration == 4:
            raise KeyboardInterrupt("simulated crash")
        return real_step(self)

    monkeypatch.setattr(ImageTrainer, "step", crash)
    arguments = dict(
        dataset="cifar10", method="febm", divergence="jensen_shannon", seed=3, data_path=cifar10_standin_npz,
        out_dir=tmp_path / "again" / "out", checkpoint_dir=tmp_path / "again" / "ckpt", scorer=scorer,
    )  # fmt: skip
    with pytest.raises(KeyboardInterrupt):
        train_images(config, **arguments)
    monkeypatch.setattr(ImageTrainer, "step", real_step)
    train_images(config, **arguments)
    assert (tmp_path / "again" / "out" / "monitor.csv").read_text().splitlines() == rows
    with pytest.raises(training.FebmError, match="monitor_interval is set but no scorer"):
        train_images(config, **{**arguments, "scorer": None})
