"""Peak host memory of one paper-scale image training process, measured on this machine's CPU; one JSON object.

The paper preset's CIFAR-10 settings (ResNet32 width 128, batch 128 per process, a 10,000-chain uint8
replay buffer per process, 60,000 cached images) with ``--launch torchrun`` (one of the K processes) or
``--launch one_process`` (K x 128 images and K x 10,000 chains in one process). Only the sampler steps per
iteration are cut (``--steps``, default 2): each step frees its graph, so the peak does not depend on
their number. On a CPU the activations live in host memory too, so the figure bounds a GPU job's host
memory from above, apart from the CUDA context (about 1-2 GB per process). The workflow's paper-preset
requests (``workflow/rules/resources.smk``, JOB_RESOURCES) are sized from it.

    python benchmarks/paper_memory.py [--launch torchrun|one_process] [--steps 2] [--iterations 2]
"""

from __future__ import annotations

import argparse
import json
import resource
import time

import torch

from febm.config import validate
from febm.images.data import ImageData
from febm.images.training import ImageTrainer, TrainSettings

CACHED_IMAGES = 60_000  # CIFAR-10 train + test, as the prepared cache holds them


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--launch", choices=["torchrun", "one_process"], default="torchrun")
    parser.add_argument("--steps", type=int, default=2, help="Langevin steps per iteration (paper: 60)")
    parser.add_argument("--iterations", type=int, default=2)
    args = parser.parse_args()
    torch.manual_seed(0)
    config = validate({})  # the schema's defaults are the paper's settings
    section = config["images"]["cifar10"]
    section["training"].update(warmup_iterations=0, parallel={"processes": 4, "launch": args.launch})
    section["sampler"]["steps"] = args.steps
    settings = TrainSettings.from_config(section, method="febm", divergence="kl", seed=0)
    images = torch.randint(0, 256, (CACHED_IMAGES, 3, 32, 32), dtype=torch.uint8)
    data = ImageData(images, torch.randint(0, 10, (CACHED_IMAGES,)), 10, True, "random")
    before = peak_rss_mb()
    trainer = ImageTrainer(settings, data, "cpu")
    started = time.perf_counter()
    for _ in range(args.iterations):
        trainer.step()
    print(
        json.dumps(
            {
                "launch": args.launch,
                "batch_per_process": settings.batch_size,
                "replay_chains_per_process": settings.replay_capacity,
                "width": settings.network.num_filters,
                "sampler_steps": args.steps,
                "iterations": args.iterations,
                "seconds_per_iteration": (time.perf_counter() - started) / args.iterations,
                "peak_rss_mb_after_data": round(before, 1),
                "peak_rss_mb": round(peak_rss_mb(), 1),
                "device": "cpu",
                "torch_threads": torch.get_num_threads(),
            }
        )
    )


if __name__ == "__main__":
    main()
