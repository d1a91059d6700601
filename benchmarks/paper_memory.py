"""Peak host memory of one paper-scale image job, measured on this machine's CPU; one JSON object.

``--job train`` (the default): the paper preset's CIFAR-10 settings (ResNet32 width 128, batch 128 per process,
a 10,000-chain uint8 replay buffer per process, 60,000 cached images) with ``--launch torchrun`` (one of the K
processes) or ``--launch one_process`` (K x 128 images and K x 10,000 chains in one process). Only the
sampler steps per iteration are cut (``--steps``, default 2): each step frees its graph, so the peak does not
depend on their number.

``--job sample|score|fid_stats``: the workflow rules sample_images, score_images and fid_stats, i.e.
``febm sample`` (paper protocol, 50,000 samples), ``febm score`` (50,000 samples) and ``febm fid-stats``
(CIFAR-10 train+test, 60,000 images), run on random-weight networks and random uint8 images of the paper's
sizes, with only compute cut (``--calls`` and ``--steps`` of the sampler's one real round; ``--batches``
Inception batches through the network): see ``benchmarks/paper_eval_memory.py``.

On a CPU the activations live in host memory too, so each figure bounds a GPU job's host memory from above,
apart from the CUDA context (about 1-2 GB per process). The workflow's paper-preset requests
(``workflow/rules/resources.smk``, JOB_RESOURCES) are sized from them.

    python benchmarks/paper_memory.py [--launch torchrun|one_process] [--steps 2] [--iterations 2]
    python benchmarks/paper_memory.py --job sample [--calls 3] [--steps 1]
    python benchmarks/paper_memory.py --job score|fid_stats [--batches 3]
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import torch

from febm.config import validate
from febm.images.data import ImageData
from febm.images.training import ImageTrainer, TrainSettings

CACHED_IMAGES = 60_000  # CIFAR-10 train + test, as the prepared cache holds them


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--job", choices=["train", "sample", "score", "fid_stats"], default="train")
    parser.add_argument("--launch", choices=["torchrun", "one_process"], default="torchrun")
    parser.add_argument(
        "--steps",
        type=int,
        default=None,
        help="train: Langevin steps per iteration (default 2, paper 60); sample: per sampler call (default 1, paper 5)",
    )
    parser.add_argument("--iterations", type=int, default=2, help="train: iterations")
    parser.add_argument(
        "--calls", type=int, default=3, help="sample: sampler calls of the real round (paper: 360)"
    )
    parser.add_argument(
        "--batches", type=int, default=3, help="score, fid_stats: batches through the Inception network"
    )
    args = parser.parse_args()
    if args.job != "train":
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from paper_eval_memory import measure

        options = {
            "job": args.job,
            "calls": args.calls,
            "steps": 1 if args.steps is None else args.steps,
            "batches": args.batches,
        }
        print(json.dumps({**measure(options), "device": "cpu"}))
        return
    args.steps = 2 if args.steps is None else args.steps
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
