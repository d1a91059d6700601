"""The paper preset's evaluation jobs for ``paper_memory.py --job sample|score|fid_stats``: peak host memory on CPU.

Each job runs the command its workflow rule runs (``febm sample``, ``febm score``, ``febm fid-stats``, through
``febm.cli.main`` with the rule's arguments) in a fresh child process, on inputs of the paper's sizes prepared
beforehand in a temporary folder (so preparing them does not count): a random-weight ResNet32 (width 128) in
``model.pt``, pytorch-fid's Inception with random weights (``febm fetch-inception --standin``'s file; memory does
not depend on weight values), 50,000 random uint8 samples, and a prepared CIFAR-10 cache of random uint8 images
(50,000 train + 10,000 test, as ``febm prepare-data`` writes it). Only compute is cut, never an allocation:

* sample: the paper protocol's 50 rounds of 1,000 chains; the last round runs the real ``_paper_round`` with
  ``calls`` sampler calls (paper: 360) of ``steps`` Langevin steps (paper: 5) at the paper's 512 chains per
  call; the 49 rounds before it return U(0, 1) chains of the same shape instead of running Langevin dynamics.
  So the real round runs while the output of the 49 others is held, as in the real job, and the
  quantisation, concatenation and ``.npz`` write of all 50,000 images are real.
* score / fid_stats: the Inception pass over all images in the configured batches (200); all but the last
  ``batches`` return random pool3 features (the logits are computed from them with the real ``fc`` weight)
  instead of running the network. The features' moments, all 50,000 (60,000) logits, their concatenation,
  the Inception Score and the Frechet distance are real.
"""

from __future__ import annotations

import contextlib
import json
import math
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

PAPER_SAMPLES = 50_000
CIFAR10_TRAIN, CIFAR10_TEST = 50_000, 10_000
IMAGE_SHAPE_NHWC = (32, 32, 3)
WHAT_IS_CUT = {
    "sample": "compute only: rounds 1-49 of 50 return U(0, 1) chains instead of running Langevin dynamics; the "
    "last round runs `calls` of the paper's 360 calls (nomix_calls 0: the calls after the two that fill the "
    "buffer mix), `steps` of its 5 steps each (512 chains per call); "
    "all 50,000 outputs, their quantisation, concatenation and .npz write are real",
    "score": "compute only: all but the last `batches` Inception batches return random pool3 features (logits "
    "from them with the real fc weight); all logits, moments, the Inception Score and FID are real",
    "fid_stats": "compute only: all but the last `batches` Inception batches return random pool3 features "
    "(logits from them with the real fc weight); the 60,000-image reference set, moments and all logits are real",
}


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _write_config(folder: Path, options: dict[str, Any]) -> Path:
    """The overrides of the schema defaults (the paper's settings): CPU, and the sample job's cut schedule."""
    evaluation: dict[str, Any] = {"device": "cpu"}
    if options["job"] == "sample":
        # nomix_calls 0: the call after the two that fill the buffer draws, restarts and writes back chains
        evaluation["paper_protocol"] = {
            "calls_per_round": options["calls"],
            "steps_per_call": options["steps"],
            "nomix_calls": 0,
        }
    path = folder / "config.yaml"
    path.write_text(json.dumps({"evaluation": evaluation}))  # JSON is YAML
    return path


def _random_uint8(rng: np.random.Generator, count: int) -> np.ndarray:
    return rng.integers(0, 256, (count, *IMAGE_SHAPE_NHWC), dtype=np.uint8)


def _reference_stats(folder: Path, weights: Path, rng: np.random.Generator) -> Path:
    from febm.evaluation.reference import save_reference_stats
    from febm.evaluation.weights import weights_info

    factor = rng.standard_normal((2048, 2048)) / math.sqrt(2048)
    meta = {
        "dataset": "cifar10",
        "reference_set": "train+test",
        "n": CIFAR10_TRAIN + CIFAR10_TEST,
        "full_set_size": CIFAR10_TRAIN + CIFAR10_TEST,
        "preprocessing": "tf",
        "weights_sha256": weights_info(weights)["sha256"],
        "standin_data": True,
    }
    path = folder / "reference_stats.npz"
    save_reference_stats(path, rng.random(2048), factor @ factor.T, meta)
    return path


def _argv(command: str, **options: Any) -> list[str]:
    """``command --option value ...`` with option names as the command line spells them."""
    return [
        command,
        *(part for name, value in options.items() for part in (f"--{name.replace('_', '-')}", str(value))),
    ]


def prepare(folder: Path, options: dict[str, Any]) -> list[str]:
    """Write the job's inputs into ``folder``; returns the ``febm`` command line its workflow rule runs."""
    from febm.config import validate

    rng = np.random.default_rng(0)
    config = str(_write_config(folder, options))
    if options["job"] == "sample":
        from febm.images.checkpoint import save_energy_model
        from febm.images.networks import build_energy_network
        from febm.images.settings import TrainSettings

        section = validate({})["images"]["cifar10"]
        settings = TrainSettings.from_config(section, method="febm", divergence="kl", seed=0)
        torch.manual_seed(0)
        model = folder / "model.pt"
        meta = {"dataset": "cifar10", "method": "febm", "divergence": "kl", "seed": 0, "standin_data": True}
        save_energy_model(model, build_energy_network(settings.network), meta)
        return _argv("sample", config=config, checkpoint=model, n=PAPER_SAMPLES, protocol="paper",
                     out=folder / "samples.npz")  # fmt: skip
    from febm.evaluation.weights import write_standin

    weights = write_standin(folder / "inception.pth")
    if options["job"] == "score":
        record = {"protocol": "paper", "model": {"dataset": "cifar10", "standin_data": True}}
        samples = folder / "samples.npz"
        np.savez(
            samples,
            images=_random_uint8(rng, PAPER_SAMPLES),
            labels=rng.integers(0, 10, PAPER_SAMPLES),
            record=np.array(json.dumps(record)),
        )
        reference = _reference_stats(folder, weights, rng)
        return _argv("score", config=config, images=samples, ref_stats=reference, weights=weights,
                     dataset="cifar10", method="febm", divergence="kl", seed=0, out=folder / "score.json")  # fmt: skip
    from febm.images.data import write_cache

    data = folder / "cifar10.npz"
    write_cache(
        data,
        {
            "images": _random_uint8(rng, CIFAR10_TRAIN),
            "labels": rng.integers(0, 10, CIFAR10_TRAIN),
            "test_images": _random_uint8(rng, CIFAR10_TEST),
            "test_labels": rng.integers(0, 10, CIFAR10_TEST),
            "num_classes": np.array(10),
            "source": np.array("random uint8 (paper_memory.py)"),
            "standin": np.array(True),
            "dataset": np.array("cifar10"),
        },
    )
    return _argv("fid-stats", config=config, dataset="cifar10", data=data, weights=weights,
                 out=folder / "reference_stats.npz")  # fmt: skip


class LastBatchesOnly(nn.Module):
    """The Inception network for the last ``real_batches`` of ``total_batches`` calls; before them random
    pool3 features of the real shape, with the logits computed from them as the network does."""

    def __init__(self, network: nn.Module, total_batches: int, real_batches: int) -> None:
        super().__init__()
        self.network, self.first_real = network, total_batches - real_batches
        self.calls, self.real_seconds, self.peaks = 0, 0.0, []

    def forward(self, images_uint8: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.calls += 1
        if self.calls > self.first_real:
            started = time.perf_counter()
            outputs = self.network(images_uint8)
            self.real_seconds += time.perf_counter() - started
            self.peaks.append(round(peak_rss_mb()))  # steady state: these stop growing
            return outputs
        pool3 = torch.rand(len(images_uint8), 2048)
        return pool3, pool3.double() @ self.network.fc_weight.double().T


def _cut_inception_pass(options: dict[str, Any], facts: dict[str, Any]) -> None:
    from febm.evaluation import scoring

    real_run_inception = scoring.run_inception

    def run_inception(images: np.ndarray, model: nn.Module, batch_size: int, **kwargs: Any) -> Any:
        total = math.ceil(len(images) / batch_size)
        real = min(options["batches"], total)
        wrapped = LastBatchesOnly(model, total, real)
        outputs = real_run_inception(images, wrapped, batch_size=batch_size, **kwargs)
        facts.update(
            peak_rss_mb_after_inception_pass=round(peak_rss_mb(), 1),
            images=len(images),
            batch_size=batch_size,
            batches=total,
            batches_through_inception=real,
            seconds_per_inception_batch=round(wrapped.real_seconds / real, 1),
            peak_rss_mb_after_each_real_batch=wrapped.peaks,
        )
        return outputs

    scoring.run_inception = run_inception


def _cut_paper_rounds(facts: dict[str, Any]) -> None:
    from febm.evaluation import paper_protocol
    from febm.evaluation.protocol_base import _random_labels
    from febm.images.sampler import uniform_noise

    real_round, real_langevin = paper_protocol._paper_round, paper_protocol.langevin
    peaks: list[int] = []

    def langevin(*arguments: Any, **options: Any) -> torch.Tensor:
        advanced = real_langevin(*arguments, **options)
        peaks.append(round(peak_rss_mb()))  # steady state: these stop growing
        return advanced

    paper_protocol.langevin = langevin
    done = {"rounds": 0}

    def paper_round(*arguments: Any) -> tuple[torch.Tensor, torch.Tensor]:
        _, settings, num_classes, generator, device, progress, _, image_shape = arguments
        done["rounds"] += 1
        rounds = math.ceil(PAPER_SAMPLES / settings.chains_per_round)
        if done["rounds"] < rounds:  # stand-in chains, same shape and dtype as a round's output
            progress.update(settings.calls_per_round)
            count = settings.chains_per_round
            return uniform_noise(count, image_shape, device, generator), _random_labels(
                count, num_classes, generator, device
            )
        started = time.perf_counter()
        result = real_round(*arguments)
        facts.update(
            peak_rss_mb_after_langevin_round=round(peak_rss_mb(), 1),
            peak_rss_mb_after_each_sampler_call=peaks,
            rounds=rounds,
            rounds_with_langevin=1,
            round_seconds=round(time.perf_counter() - started, 1),
            calls_per_round=settings.calls_per_round,
            steps_per_call=settings.steps_per_call,
            chains_per_call=settings.batch_size,
        )
        return result

    paper_protocol._paper_round = paper_round


def child(options: dict[str, Any], argv: list[str]) -> None:
    """In the fresh process: cut the compute as described, run the command, print one JSON object."""
    from febm.cli import main as febm_main

    facts: dict[str, Any] = {}
    if options["job"] == "sample":
        _cut_paper_rounds(facts)
    else:
        _cut_inception_pass(options, facts)
    before = peak_rss_mb()
    started = time.perf_counter()
    with contextlib.redirect_stdout(sys.stderr):  # the command's own summary is not our JSON
        status = febm_main(argv)
    if status != 0:
        raise SystemExit(f"febm {argv[0]} exited {status}")
    facts.update(
        peak_rss_mb_after_imports=round(before, 1),
        peak_rss_mb=round(peak_rss_mb(), 1),
        wall_seconds=round(time.perf_counter() - started, 1),
        torch_threads=torch.get_num_threads(),
    )
    print(json.dumps(facts))


def measure(options: dict[str, Any]) -> dict[str, Any]:
    """Prepare the inputs here, run the job in a child process, return its figures."""
    with tempfile.TemporaryDirectory(prefix="febm-paper-memory-") as folder:
        argv = prepare(Path(folder), options)
        completed = subprocess.run(
            [sys.executable, __file__, json.dumps(options), *argv],
            stdout=subprocess.PIPE,
            text=True,
            check=True,
        )
    facts = json.loads(completed.stdout.strip().splitlines()[-1])
    command = "febm " + " ".join(argument.replace(folder, "TMP") for argument in argv)
    return {"job": options["job"], "command": command, "cut": WHAT_IS_CUT[options["job"]], **facts}


if __name__ == "__main__":
    child(json.loads(sys.argv[1]), sys.argv[2:])
