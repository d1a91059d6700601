"""The Fashion-MNIST classifier and its scores (FID in its feature space, conditional accuracy, IS formula),
on real Fashion-MNIST images, plus 1-channel sampling and greyscale grids.

Real data: Debian's ``dataset-fashion-mnist`` idx files, read directly (28x28 padded by 2 zero pixels to
32x32, as the prepared cache). Margins below were measured over seeds 0-9 (accuracy) and 0-5 (scores) of
the small classifier trained here (4,000 training images, width 16, 2 epochs of batch 64 = 126 steps).
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from febm.cli import main
from febm.evaluation.classifier import (
    CLASSIFIER_FORMAT,
    ClassifierError,
    features,
    load_classifier,
    save_classifier,
    train_classifier,
)
from febm.evaluation.classifier_scores import classifier_scores, reference_images, reference_statistics
from febm.evaluation.metrics import inception_score
from febm.images.checkpoint import save_energy_model
from febm.images.networks import NetworkConfig, build_energy_network
from tests.test_evaluation_one_channel import _tiny_evaluation

FASHION_MNIST_ROOT = Path("/usr/share/datasets/fashion-mnist")
SMALL_SETTINGS = {"epochs": 2, "batch_size": 64, "width": 16}


def _read_idx(split: str) -> tuple[np.ndarray, np.ndarray]:
    prefix = "train" if split == "train" else "t10k"
    images_file = FASHION_MNIST_ROOT / f"{prefix}-images-idx3-ubyte.gz"
    assert images_file.is_file(), (
        f"{images_file} is missing: install Debian's dataset-fashion-mnist (apt-get install dataset-fashion-mnist)"
    )
    with gzip.open(images_file) as handle:
        images = np.frombuffer(handle.read(), np.uint8, offset=16).reshape(-1, 28, 28)
    with gzip.open(FASHION_MNIST_ROOT / f"{prefix}-labels-idx1-ubyte.gz") as handle:
        labels = np.frombuffer(handle.read(), np.uint8, offset=8).astype(np.int64)
    return np.pad(images, ((0, 0), (2, 2), (2, 2)))[..., None], labels


@pytest.fixture(scope="module")
def fashion() -> dict[str, np.ndarray]:
    """Train images 0-5,999 (0-3,999 to train on, the rest held out) and test images 0-1,999."""
    train_images, train_labels = _read_idx("train")
    test_images, test_labels = _read_idx("test")
    return {
        "train_images": train_images[:6000].copy(),
        "train_labels": train_labels[:6000].copy(),
        "test_images": test_images[:2000].copy(),
        "test_labels": test_labels[:2000].copy(),
    }


@pytest.fixture(scope="module")
def small_classifier(fashion):
    previous = torch.get_num_threads()
    torch.set_num_threads(1)  # small convolutions: one thread beats two on a busy 2-core machine
    try:
        yield train_classifier(
            fashion["train_images"][:4000],
            fashion["train_labels"][:4000],
            fashion["test_images"],
            fashion["test_labels"],
            {**SMALL_SETTINGS, "seed": 0},
            progress=False,
        )
    finally:
        torch.set_num_threads(previous)


def test_a_short_training_classifies_real_images_far_above_chance(small_classifier, fashion):
    model, record = small_classifier
    # Measured test accuracy over seeds 0-9: 0.849-0.865 (chance: 0.10).
    assert record["test_accuracy"] >= 0.75
    assert record["n"] == 4000 and record["epochs"] == 2 and record["steps"] == 126
    assert record["seconds"] > 0 and len(record["test_accuracy_per_epoch"]) == 2
    feature_rows, logits = features(model, fashion["test_images"][:10])
    assert feature_rows.shape == (10, 128) and logits.shape == (10, 10)
    assert not any(parameter.requires_grad for parameter in model.parameters())


def test_training_is_repeatable_for_a_seed_and_differs_across_seeds(fashion, single_torch_thread):
    def weights(seed: int) -> torch.Tensor:
        model, _ = train_classifier(
            fashion["train_images"][:256],
            fashion["train_labels"][:256],
            fashion["test_images"][:64],
            fashion["test_labels"][:64],
            {"epochs": 1, "batch_size": 64, "width": 4, "feature_dim": 8, "seed": seed},
            progress=False,
        )
        return torch.cat([value.flatten().float() for value in model.state_dict().values()])

    global_state = torch.random.get_rng_state()
    first = weights(3)
    assert torch.equal(torch.random.get_rng_state(), global_state)  # the caller's generator is untouched
    assert torch.equal(first, weights(3))
    assert not torch.equal(first, weights(4))


def test_real_images_score_far_better_than_noise(small_classifier, fashion):
    model, _ = small_classifier
    mu, sigma = reference_statistics(fashion["test_images"], model)
    held_out, held_out_labels = fashion["train_images"][4000:], fashion["train_labels"][4000:]
    real = classifier_scores(held_out, held_out_labels, model, mu, sigma)
    shuffled_labels = np.random.default_rng(0).permutation(held_out_labels)
    shuffled = classifier_scores(held_out, shuffled_labels, model, mu, sigma)
    noise_images, noise_labels = reference_images(
        "noise", fashion["train_images"], fashion["train_labels"], 2000, seed=0, num_classes=10
    )
    noise = classifier_scores(noise_images, noise_labels, model, mu, sigma)

    # Measured over seeds 0-5: real FID 1.50-1.94, noise FID 407-624, ratio 241-395.
    assert noise["fid"] > 50 * real["fid"]
    # Correct labels: 0.858-0.871; shuffled: 0.089-0.112 (sd of a 2,000-image share at 10%: 0.007).
    assert real["conditional_accuracy"] >= 0.75
    assert abs(shuffled["conditional_accuracy"] - 0.1) < 0.04
    # IS formula on the classifier's softmax: real 6.26-6.50 of at most 10; noise 1.00-1.12.
    assert real["inception_score"] > 4 and noise["inception_score"] < 2
    _, logits = features(model, held_out)
    assert real["inception_score"] == pytest.approx(inception_score(logits, splits=1)[0])
    assert real["n"] == 2000 and sum(real["predicted_class_fractions"]) == pytest.approx(1.0)
    unconditional = classifier_scores(held_out[:50], None, model, mu, sigma)
    assert unconditional["conditional_accuracy"] is None


def test_reference_rows_are_seeded_subsets_and_noise():
    images = np.arange(20, dtype=np.uint8).reshape(20, 1, 1, 1).repeat(4, axis=1)
    labels = np.arange(20) % 10
    subset, subset_labels = reference_images("train", images, labels, 5, seed=1, num_classes=10)
    again, _ = reference_images("train", images, labels, 5, seed=1, num_classes=10)
    assert np.array_equal(subset, again) and len(set(subset[:, 0, 0, 0])) == 5
    assert np.array_equal(subset_labels, subset[:, 0, 0, 0] % 10)
    everything, _ = reference_images("train", images, labels, 0, seed=1, num_classes=10)
    assert np.array_equal(everything, images)
    noise, noise_labels = reference_images("noise", images, labels, 7, seed=1, num_classes=10)
    assert noise.shape == (7, 4, 1, 1) and noise.dtype == np.uint8 and noise_labels.max() < 10


def _tiny_classifier_file(tmp_path: Path) -> tuple[Path, torch.nn.Module]:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(32, 32, 32, 1), dtype=np.uint8)
    labels = np.arange(32) % 10
    model, record = train_classifier(
        images, labels, images, labels, {"epochs": 1, "width": 2, "feature_dim": 4}, progress=False
    )
    path = tmp_path / "classifier.pt"
    save_classifier(path, model, record)
    return path, model


def test_saved_classifier_loads_with_weights_only_and_gives_the_same_logits(tmp_path):
    path, model = _tiny_classifier_file(tmp_path)
    payload = torch.load(path, map_location="cpu", weights_only=True)
    assert payload["format"] == CLASSIFIER_FORMAT and payload["record"]["epochs"] == 1
    loaded, record = load_classifier(path)
    images = np.random.default_rng(1).integers(0, 256, size=(5, 32, 32, 1), dtype=np.uint8)
    np.testing.assert_array_equal(features(loaded, images)[1], features(model, images)[1])
    assert record["n"] == 32
    with pytest.raises(ClassifierError, match=r"\(N, 32, 32, 1\) uint8"):
        features(loaded, np.zeros((2, 32, 32, 3), np.uint8))  # RGB samples for a greyscale classifier


def _one_line(error: pytest.ExceptionInfo) -> str:
    message = str(error.value)
    assert "\n" not in message
    return message


def test_bad_classifier_files_fail_with_one_clear_line(tmp_path):
    path, _ = _tiny_classifier_file(tmp_path)
    payload = torch.load(path, map_location="cpu", weights_only=True)

    with pytest.raises(ClassifierError) as missing:
        load_classifier(tmp_path / "absent.pt")
    assert "does not exist" in _one_line(missing) and "febm train-classifier" in _one_line(missing)

    wrong_shape = tmp_path / "wrong_shape.pt"
    payload["state_dict"]["head.weight"] = torch.zeros(7, 4)  # 7 classes where the architecture says 10
    torch.save(payload, wrong_shape)
    with pytest.raises(ClassifierError) as shape_error:
        load_classifier(wrong_shape)
    assert "do not fit its architecture" in _one_line(shape_error) and "head.weight" in _one_line(shape_error)

    energy_file = tmp_path / "model.pt"
    save_energy_model(energy_file, build_energy_network(NetworkConfig(num_filters=2)), {})
    with pytest.raises(ClassifierError) as foreign:
        load_classifier(energy_file)
    assert "is not a febm classifier" in _one_line(foreign)

    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(path.read_bytes()[:200])
    with pytest.raises(ClassifierError) as cut:
        load_classifier(truncated)
    assert "cannot be read" in _one_line(cut)


def _write_cache(path: Path, fashion: dict[str, np.ndarray], dataset: str = "fashion_mnist") -> Path:
    np.savez(
        path,
        images=fashion["train_images"][:600],
        labels=fashion["train_labels"][:600],
        test_images=fashion["test_images"][:300],
        test_labels=fashion["test_labels"][:300],
        num_classes=np.int64(10),
        standin=np.bool_(False),
        dataset=np.array(dataset),
    )
    return path


def test_commands_train_score_samples_and_reference_rows(fashion, tmp_path, capsys, single_torch_thread):
    from febm.images.sampling import sample_to_file

    data = _write_cache(tmp_path / "fashion_mnist.npz", fashion)
    config = tmp_path / "config.yaml"
    settings = {"epochs": 1, "width": 4, "feature_dim": 16, "reference_images": 200}
    config.write_text(json.dumps({"preset": "smoke", "evaluation": _tiny_evaluation(**settings)}))
    classifier = tmp_path / "classifier" / "fashion_mnist.pt"
    assert (
        main(["train-classifier", "--config", str(config), "--data", str(data), "--out", str(classifier)])
        == 0
    )
    record = json.loads(classifier.with_suffix(".json").read_text())
    assert record["n"] == 600 and record["n_test"] == 300 and record["dataset"] == "fashion_mnist"
    assert 0 <= record["test_accuracy"] <= 1 and record["config_hash"] and record["provenance"]

    energy = build_energy_network(NetworkConfig(num_filters=4, num_classes=10, image_channels=1))
    model_file = tmp_path / "model.pt"
    meta = {"dataset": "fashion_mnist", "method": "febm", "divergence": "jensen_shannon", "seed": 3}
    save_energy_model(model_file, energy, {**meta, "iterations": 5, "standin_data": False, "preset": "smoke"})
    samples = tmp_path / "samples.npz"
    sample_to_file(
        checkpoint=model_file,
        count=6,
        protocol="paper",
        out=samples,
        config_paths=[config],
        seed=0,
        device="cpu",
    )

    common = [
        "classifier-score",
        "--config",
        str(config),
        "--classifier",
        str(classifier),
        "--data",
        str(data),
    ]
    rows = {}
    for name, source in (("samples", ["--images", str(samples)]), ("train", ["--reference", "train"])):
        out = tmp_path / f"{name}.json"
        assert main([*common, *source, "--out", str(out)]) == 0
        rows[name] = json.loads(out.read_text())
    capsys.readouterr()
    scored = rows["samples"]
    assert {key: scored[key] for key in meta} == meta
    assert scored["kind"] == "samples" and scored["n"] == 6 and scored["protocol"] == "paper"
    protocol = scored["protocol_settings"]
    described = f"paper protocol: {protocol['calls_per_round']} calls x {protocol['steps_per_call']} steps"
    assert (
        scored["scale"] == f"6 samples ({described}), 5 training iterations" and scored["preset"] == "smoke"
    )
    assert scored["standin_data"] is False and scored["training_iterations"] == 5
    assert 0 <= scored["conditional_accuracy"] <= 1 and np.isfinite(scored["fid"])
    assert scored["classifier"]["test_accuracy"] == record["test_accuracy"]
    assert scored["reference"] == {"set": "test", "n": 300, "data_path": str(data)}
    train_row = rows["train"]
    assert train_row["kind"] == "reference_train" and train_row["n"] == 200 and train_row["method"] is None
    assert train_row["dataset"] == "fashion_mnist" and train_row["config_hash"] == scored["config_hash"]


def test_score_command_refuses_bad_inputs_with_one_line_and_no_output(fashion, tmp_path, capsys):
    data = _write_cache(tmp_path / "fashion_mnist.npz", fashion)
    config = tmp_path / "config.yaml"
    config.write_text(json.dumps({"evaluation": {"device": "cpu"}}))
    classifier, _ = _tiny_classifier_file(tmp_path)
    payload = torch.load(classifier, map_location="cpu", weights_only=True)
    payload["state_dict"]["blocks.0.0.weight"] = torch.zeros(2, 3, 3, 3)  # an RGB first layer
    wrong_shape = tmp_path / "wrong_shape.pt"
    torch.save(payload, wrong_shape)
    other_dataset = _write_cache(tmp_path / "other.npz", fashion, dataset="cifar10")
    payload = torch.load(classifier, map_location="cpu", weights_only=True)
    payload["record"]["dataset"] = "fashion_mnist"
    named = tmp_path / "named.pt"
    torch.save(payload, named)

    cases = {
        "wrong shape": (wrong_shape, data, "do not fit its architecture"),
        "missing data": (classifier, tmp_path / "absent.npz", "does not exist"),
        "other dataset": (named, other_dataset, "different datasets"),
    }
    for case, (weights, data_file, expected) in cases.items():
        out = tmp_path / f"{case}.json"
        command = ["classifier-score", "--config", str(config), "--classifier", str(weights)]
        code = main([*command, "--data", str(data_file), "--reference", "noise", "--out", str(out)])
        error = capsys.readouterr().err
        assert code == 2, case
        assert error.count("\n") == 1 and expected in error, (case, error)
        assert not out.exists(), case
