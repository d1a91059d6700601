"""The bad-input matrix: one row per case. Each runs a real `febm` command (in-process, `febm.cli.main`, the
console script's entry point) and expects exit status 2, exactly one `febm <cmd>: error: ...` line that
names the problem and the fix, no traceback, and no output (nor temporary file) left behind.

Faults that need the operating system's cooperation are simulated at the system-call boundary, because
CI runs as root (which ignores permission bits) and has no tiny file system to fill: a full disk is
`os.fsync` failing with ENOSPC for the checkpoint's file, a read-only results folder is `os.open`,
`os.mkdir` and `open` failing with EACCES for paths inside it.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from febm.cli import main
from febm.config import deep_merge
from tests.syscall_faults import disk_full_on_checkpoints, read_only

TOY = {
    "preset": "smoke",
    "toy": {
        "divergences": ["kl"],
        "seeds": [0],
        "train": {"iterations": 30, "batch_size": 50, "model_batch_size": 50, "hidden_units": 8,
                  "checkpoint_every": 10, "warmup_iterations": 5, "h_warmup_iterations": 5},
    },
}  # fmt: skip
IMAGES = {
    "preset": "smoke",
    "images": {
        "standin_data": True,
        "cifar10": {
            "network": {"num_filters": 4},
            "training": {"iterations": 4, "batch_size": 4, "warmup_iterations": 1, "checkpoint_interval": 2},
            "sampler": {"steps": 2},
            "replay": {"capacity": 16},
        },
    },
    "evaluation": {"checkpoint_selection": "final"},  # best-IS: tests/test_best_checkpoint.py
}


@dataclass
class World:
    """The folder a case runs in, and shared valid inputs (a toy optimum, stand-in CIFAR-10)."""

    root: Path
    optimum: Path
    cifar10_root: Path
    cifar10_npz: Path
    monkeypatch: pytest.MonkeyPatch
    outputs: list[Path] = field(default_factory=list)

    def config(self, base: dict[str, Any], overlay: dict[str, Any] | None = None) -> str:
        path = self.root / "config.yaml"
        path.write_text(yaml.safe_dump(deep_merge(base, overlay or {})))
        return str(path)

    def out(self, relative: str) -> str:
        """An output the command would write; it must not exist after the failure."""
        path = self.root / "results" / relative
        self.outputs.append(path)
        return str(path)


def toy_train(world: World, config: str, out_dir: str | None = None) -> list[str]:
    out_dir = out_dir or str(world.root / "results" / "toy" / "runs" / "febm" / "kl" / "seed0")
    for name in ("metrics.json", "trajectory.csv", "h.pt"):
        world.outputs.append(Path(out_dir) / name)
    return ["toy-train", "--config", config, "--method", "febm", "--divergence", "kl", "--seed", "0",
            "--optimum", str(world.optimum), "--out-dir", out_dir, "--no-progress"]  # fmt: skip


def toy_optimum(world: World, config: str, divergence: str = "kl") -> list[str]:
    return ["toy-optimum", "--config", config, "--divergence", divergence, "--out", world.out("optimum.json")]


def train_images(
    world: World, config: str, data: str | None = None, divergence: str = "jensen_shannon"
) -> list[str]:
    out_dir = str(world.root / "results" / "images" / "run")
    for name in ("model.pt", "metrics.json", "train_log.csv", "samples.png"):
        world.outputs.append(Path(out_dir) / name)
    return ["train-images", "--config", config, "--dataset", "cifar10", "--method", "febm",
            "--divergence", divergence, "--seed", "0", "--data", data or str(world.cifar10_npz),
            "--out-dir", out_dir, "--checkpoint-dir", str(world.root / "ckpt")]  # fmt: skip


def prepare_cifar10(world: World, config: str, root: Path) -> list[str]:
    return ["prepare-data", "--config", config, "--dataset", "cifar10", "--root", str(root),
            "--out", world.out("data/cifar10.npz")]  # fmt: skip


def small_model(path: Path, num_filters: int = 4) -> Path:
    from febm.images.checkpoint import save_energy_model
    from febm.images.networks import NetworkConfig, build_energy_network

    save_energy_model(path, build_energy_network(NetworkConfig(num_filters=num_filters, num_classes=10)), {})
    return path


def sample(world: World, checkpoint: Path) -> list[str]:
    return ["sample", "--checkpoint", str(checkpoint), "--n", "2", "--protocol", "plain",
            "--out", world.out("samples.npz"), "--device", "cpu"]  # fmt: skip


# --- the matrix --------------------------------------------------------------------------------


@dataclass
class Case:
    name: str
    command: Callable[[World], list[str]]
    problem: str  # regex: names what is wrong
    fix: str  # regex: names what to do


def _corrupt_cifar10(world: World, real: bool = False) -> Path:
    """Stand-in CIFAR-10 with data_batch_1 cut short; ``real``: without the stand-in marker (md5 checked)."""
    root = world.root / "raw"
    shutil.copytree(world.cifar10_root, root)
    for marker in root.rglob("FEBM_STANDIN") if real else []:
        marker.unlink()
    batch = root / "cifar-10-batches-py" / "data_batch_1"
    batch.write_bytes(batch.read_bytes()[:5000])
    return root


def _empty_celeba(world: World) -> list[str]:
    (world.root / "raw" / "celeba" / "img_align_celeba").mkdir(parents=True)
    return ["prepare-data", "--config", world.config(IMAGES), "--dataset", "celeba32",
            "--root", str(world.root / "raw"), "--out", world.out("data/celeba32.npz")]  # fmt: skip


def _truncated_model(world: World) -> list[str]:
    model = small_model(world.root / "model.pt")
    model.write_bytes(model.read_bytes()[:3000])
    return sample(world, model)


def _wrong_architecture_model(world: World) -> list[str]:
    model = small_model(world.root / "model.pt")
    payload = torch.load(model, weights_only=True)
    payload["network"]["num_filters"] = 8  # the description says 8 filters, the weights have 4
    torch.save(payload, model)
    return sample(world, model)


def _wrong_architecture_training_state(world: World) -> list[str]:
    from febm import checkpoints
    from febm.config import load_config
    from febm.images.networks import NetworkConfig, build_energy_network
    from febm.images.run import checkpoint_key
    from febm.images.training import TrainSettings

    wider = load_config([world.config(IMAGES, {"images": {"cifar10": {"network": {"num_filters": 8}}}})])
    settings = TrainSettings.from_config(
        wider["images"]["cifar10"], method="febm", divergence="jensen_shannon", seed=0
    )
    network = build_energy_network(NetworkConfig(num_filters=8, num_classes=10))
    key = checkpoint_key(wider, "cifar10", settings)
    checkpoints.save_state(world.root / "ckpt", 2, {"energy": network.state_dict()}, key)
    return train_images(world, world.config(IMAGES))


def _toy_trainer(world: World, method: str = "febm"):
    from febm.config import load_config
    from febm.quadrature import GaussianMixture
    from febm.toy.settings import TrainSettings
    from febm.toy.train import ToyTrainer

    config = load_config([world.config(TOY)])
    mixture = GaussianMixture(**config["toy"]["mixture"])
    return ToyTrainer(method, "kl", mixture, TrainSettings.from_config(config), 0)


def _truncated_toy_checkpoints(world: World) -> list[str]:
    run = world.root / "results" / "toy" / "runs" / "febm" / "kl" / "seed0"
    folder = _toy_trainer(world).checkpoint_dir(run)  # this run's own folder, both states cut short
    folder.mkdir(parents=True)
    for step in (10, 20):
        path = folder / f"state_{step:08d}_rank0.pt"
        torch.save({"step": step, "padding": torch.zeros(1000)}, path)
        path.write_bytes(path.read_bytes()[:700])
    return toy_train(world, world.config(TOY), str(run))


def _foreign_toy_checkpoint(world: World) -> list[str]:
    from febm import checkpoints

    run = world.root / "results" / "toy" / "runs" / "febm" / "kl" / "seed0"
    other = _toy_trainer(world, "cd")  # another run's state, moved into this run's folder by hand
    checkpoints.save_state(world.root / "other", 10, other.state(0.0), other.settings_key)
    folder = _toy_trainer(world).checkpoint_dir(run)
    folder.mkdir(parents=True)
    shutil.copy(world.root / "other" / "state_00000010_rank0.pt", folder)
    return toy_train(world, world.config(TOY), str(run))


def _inception_of_wrong_shape(world: World) -> list[str]:
    from febm.evaluation.weights import expected_shapes

    bad = world.root / "inception.pth"
    torch.save({name: torch.zeros(1) for name in expected_shapes()}, bad)
    return ["fetch-inception", "--from", str(bad), "--out", world.out("inception/pt_inception.pth")]


def _disk_full_toy(world: World) -> list[str]:
    disk_full_on_checkpoints(world.monkeypatch)
    return toy_train(world, world.config(TOY))


def _disk_full_images(world: World) -> list[str]:
    disk_full_on_checkpoints(world.monkeypatch)
    return train_images(world, world.config(IMAGES))


def _read_only_results(world: World) -> list[str]:
    read_only(world.monkeypatch, world.root / "results")
    return toy_optimum(world, world.config(TOY))


def _read_only_checkpoints(world: World) -> list[str]:
    (world.root / "ckpt").mkdir()
    read_only(world.monkeypatch, world.root / "ckpt")
    return train_images(world, world.config(IMAGES))


CASES = [
    Case("unknown divergence", lambda w: toy_optimum(w, w.config(TOY), "kl_typo"),
         r"unknown divergence 'kl_typo'", r"valid names: .*kl"),
    Case("unknown divergence (images)", lambda w: train_images(w, w.config(IMAGES), divergence="klx"),
         r"unknown divergence 'klx'", r"valid names"),
    Case("alpha = 0", lambda w: toy_optimum(w, w.config(TOY), "alpha_0"),
         r"alpha must be .* other than 0 and 1", r"use 'reverse_kl' or 'kl'"),
    Case("alpha = 1 in the config", lambda w: toy_optimum(w, w.config(TOY, {"toy": {"divergences": ["alpha_1"]}})),
         r"toy\.divergences: alpha must be .*got 1\.0", r"use 'reverse_kl' or 'kl'"),
    Case("divergence with shell metacharacters", lambda w: toy_optimum(w, w.config(TOY, {"toy": {"divergences": ["kl; touch x"]}})),
         r"toy\.divergences\.0: 'kl; touch x' does not match", r"use a registered name"),
    Case("negative learning rate (1-D)", lambda w: toy_train(w, w.config(TOY, {"toy": {"train": {"e_lr": -0.01}}})),
         r"toy\.train\.e_lr: -0\.01 is less than or equal to the minimum of 0", r"use a value in the allowed range"),
    Case("negative learning rate (images)",
         lambda w: train_images(w, w.config(IMAGES, {"images": {"cifar10": {"training": {"lr": -3e-4}}}})),
         r"images\.cifar10\.training\.lr: -0\.0003 is less than", r"use a value in the allowed range"),
    Case("zero seeds", lambda w: toy_optimum(w, w.config(TOY, {"toy": {"seeds": []}})),
         r"toy\.seeds: \[\] should be non-empty", r"list at least one entry"),
    Case("config key typo", lambda w: toy_optimum(w, w.config(TOY, {"toy": {"train": {"iteratons": 5}}})),
         r"toy\.train: .*'iteratons' was unexpected", r"correct its spelling"),
    Case("config file missing", lambda w: toy_optimum(w, str(w.root / "nope.yaml")),
         r"config file '.*nope\.yaml' does not exist", r"check the path"),
    Case("missing dataset (prepared file)", lambda w: train_images(w, w.config(IMAGES), data=str(w.root / "cifar10.npz")),
         r"prepared data '.*cifar10\.npz' does not exist", r"make it with `febm prepare-data"),
    Case("missing dataset (raw files)",
         lambda w: prepare_cifar10(w, w.config(IMAGES, {"images": {"standin_data": False, "download": False}}), w.root),
         r"CIFAR-10 is not available under .*images\.download is false", r"Download https://.*extract it there"),
    Case("corrupted CIFAR-10 pickle", lambda w: prepare_cifar10(w, w.config(IMAGES), _corrupt_cifar10(w)),
         r"data_batch_1' cannot be unpickled", r"download/extract CIFAR-10 again"),
    Case("corrupted CIFAR-10 pickle (md5 checked)",
         lambda w: prepare_cifar10(w, w.config(IMAGES, {"images": {"standin_data": False}}), _corrupt_cifar10(w, True)),
         r"data_batch_1' fails its md5 check", r"download again"),
    Case("CelebA folder with no images", _empty_celeba,
         r"img_align_celeba' holds no images", r"extract img_align_celeba\.zip .* into it"),
    Case("truncated model checkpoint", _truncated_model,
         r"model file '.*model\.pt' cannot be read", r"copy it again or rerun `febm train-images`"),
    Case("wrong-architecture model checkpoint", _wrong_architecture_model,
         r"does not match its network description .*size mismatch", r"use the model\.pt that `febm train-images` wrote"),
    Case("wrong-architecture training state", _wrong_architecture_training_state,
         r"belong to a run with other settings", r"use another --checkpoint-dir or delete that folder"),
    Case("truncated 1-D checkpoints (both copies)", _truncated_toy_checkpoints,
         r"no readable training state in '.*/checkpoints/\w+' \(state_00000020_rank0\.pt, state_00000010",
         r"delete that folder to start the run over"),
    Case("1-D checkpoint of another run", _foreign_toy_checkpoint,
         r"the checkpoints in '.*/checkpoints/\w+' belong to a run with other settings",
         r"use another --out-dir or delete that folder"),
    Case("Inception weights of the wrong shape", _inception_of_wrong_shape,
         r"is not pytorch-fid's Inception .*wrong shapes", r"fetch it again with `febm fetch-inception`"),
    Case("full disk on a 1-D checkpoint write", _disk_full_toy,
         r"cannot write '.*/state_00000010_rank0\.pt': No space left on device", r"free disk space"),
    Case("full disk on an image checkpoint write", _disk_full_images,
         r"cannot write '.*state_00000002_rank0\.pt': No space left on device", r"free disk space"),
    Case("results folder without write permission", _read_only_results,
         r"cannot write '.*optimum\.json': Permission denied", r"make the folder writable"),
    Case("checkpoint folder without write permission", _read_only_checkpoints,
         r"cannot write '.*ckpt/train_log\.csv': Permission denied", r"make the folder writable"),
]  # fmt: skip


@pytest.fixture(scope="module")
def shared_inputs(tmp_path_factory, cifar10_standin_root, cifar10_standin_npz):
    from febm.config import validate
    from febm.toy.runs import run_optimum

    optimum = tmp_path_factory.mktemp("optimum") / "kl.json"
    run_optimum(validate(deep_merge(TOY, {})), "kl", optimum)
    return optimum, cifar10_standin_root, cifar10_standin_npz


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_bad_input_fails_with_one_clear_line_and_leaves_no_output(
    case, shared_inputs, tmp_path, monkeypatch, capsys, single_torch_thread
):
    optimum, cifar10_root, cifar10_npz = shared_inputs
    world = World(tmp_path, optimum, cifar10_root, cifar10_npz, monkeypatch)
    monkeypatch.chdir(tmp_path)
    argv = case.command(world)
    capsys.readouterr()
    status = main(argv)
    monkeypatch.undo()  # the simulated faults end with the command
    stderr = capsys.readouterr().err
    errors = [line for line in stderr.splitlines() if ": error: " in line]
    assert status == 2, stderr
    assert "Traceback" not in stderr
    assert len(errors) == 1 and errors[0].startswith(f"febm {argv[0]}: error: "), stderr
    assert re.search(case.problem, errors[0]), errors[0]
    assert re.search(case.fix, errors[0]), errors[0]
    assert world.outputs and not [str(p) for p in world.outputs if p.exists()]
    assert not [str(p) for p in tmp_path.rglob("*.tmp")]
