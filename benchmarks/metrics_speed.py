"""Scoring speed of ``febm score`` against pytorch-fid's own command line; prints one JSON object.

Both commands score the same folder of PNGs against the same reference statistics, on the same device,
run one after the other as fresh processes (so import, model load, feature extraction and the Fréchet
distance all count, as a user would see them):

    theirs: python -m pytorch_fid DIR stats.npz --device D            (its defaults: batch 50, workers)
    ours:   febm score --images DIR --ref-stats stats.npz --weights W (batch 200, TF preprocessing, + IS)

Keys:
* ``speed_ratio_vs_pytorch_fid_cli``: our images/s over theirs (wall time of the whole command);
* ``extraction_speed_ratio``: the same for the feature extraction alone, in this process
  (pytorch-fid's ``get_activations`` on the files vs our batched pass over the decoded images);
* ``*_cli_seconds``, ``*_images_per_second``, the image count, device, weights (stand-in or real).

Without real weights in the torch hub cache, Kaiming-random stand-in weights of the identical layout are
used: speed does not depend on the weight values. Timing on a shared machine is noisy.

    python benchmarks/metrics_speed.py [--n 200] [--device cpu|cuda] [--weights PATH] [--repeats 1]
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from febm.evaluation.extract import run_inception
from febm.evaluation.image_files import load_image_set, save_png_folder
from febm.evaluation.inception import load_fid_inception
from febm.evaluation.reference import save_reference_stats
from febm.evaluation.weights import WEIGHTS_FILENAME, hub_cache_path, weights_info, write_standin
from febm.io import provenance


def benchmark_images(count: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0.5, 1.0, 32)[None, :, None, None]
    base = rng.uniform(0, 255, size=(count, 1, 1, 3)) * ramp
    return np.clip(base + rng.normal(0, 25, size=(count, 32, 32, 3)), 0, 255).astype(np.uint8)


def timed(command: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{result.stderr[-2000:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, help="images (default: 200 on CPU, 10000 on CUDA)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument(
        "--weights", type=Path, help="Inception weights (default: torch hub cache, else stand-in)"
    )
    parser.add_argument("--repeats", type=int, default=1, help="alternating runs of each command")
    args = parser.parse_args()
    count = args.n or (10_000 if args.device.startswith("cuda") else 200)

    with tempfile.TemporaryDirectory() as scratch_name:
        scratch = Path(scratch_name)
        torch_home = scratch / "torch_home"
        cached = args.weights or hub_cache_path()
        weights = torch_home / "hub" / "checkpoints" / WEIGHTS_FILENAME
        weights.parent.mkdir(parents=True)
        if cached.is_file():
            os.symlink(cached.resolve(), weights)
        else:
            write_standin(weights)
        env = {**os.environ, "TORCH_HOME": str(torch_home)}

        folder = scratch / "images"
        save_png_folder(benchmark_images(count), folder)
        # Reference statistics: any positive-definite covariance costs the same Fréchet distance.
        rng = np.random.default_rng(1)
        factor = rng.normal(size=(2048, 2048)) / 64
        info = weights_info(weights)
        stats = scratch / "stats.npz"
        meta = {"preprocessing": "tf", "weights_sha256": info["sha256"]}
        save_reference_stats(stats, rng.normal(size=2048), factor @ factor.T + 1e-3 * np.eye(2048), meta)
        config = scratch / "config.yaml"
        device_name = "cuda" if args.device.startswith("cuda") else "cpu"
        splits = min(10, count)
        config.write_text(f"evaluation:\n  device: {device_name}\n  inception_score: {{splits: {splits}}}\n")

        theirs_command = [
            sys.executable,
            "-m",
            "pytorch_fid",
            str(folder),
            str(stats),
            "--device",
            args.device,
        ]
        febm = str(Path(sys.executable).with_name("febm"))
        ours_command = [
            febm,
            "score",
            "--images",
            str(folder),
            "--ref-stats",
            str(stats),
            "--weights",
            str(weights),
        ]
        ours_command += ["--config", str(config)]
        theirs_seconds, ours_seconds = [], []
        for _ in range(args.repeats):
            theirs_seconds.append(timed(theirs_command, env))
            ours_seconds.append(timed(ours_command, env))

        # Extraction alone, in this process, models loaded beforehand.
        from pytorch_fid.fid_score import get_activations
        from pytorch_fid.inception import InceptionV3

        os.environ["TORCH_HOME"] = str(torch_home)
        their_model = InceptionV3([3]).to(args.device).eval()
        files = sorted(glob.glob(str(folder / "*.png")))
        workers = min(8, len(os.sched_getaffinity(0)))
        start = time.perf_counter()
        get_activations(files, their_model, batch_size=50, device=args.device, num_workers=workers)
        theirs_extraction = time.perf_counter() - start
        our_model = load_fid_inception(weights, args.device, preprocessing="tf", channels_last=True)
        start = time.perf_counter()
        run_inception(load_image_set(folder).images, our_model, batch_size=200, progress=False)
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        ours_extraction = time.perf_counter() - start

    theirs_rate = count / statistics.median(theirs_seconds)
    ours_rate = count / statistics.median(ours_seconds)
    print(
        json.dumps(
            {
                "speed_ratio_vs_pytorch_fid_cli": round(ours_rate / theirs_rate, 3),
                "ours_cli_seconds": [round(value, 2) for value in ours_seconds],
                "pytorch_fid_cli_seconds": [round(value, 2) for value in theirs_seconds],
                "ours_images_per_second": round(ours_rate, 2),
                "pytorch_fid_images_per_second": round(theirs_rate, 2),
                "extraction_speed_ratio": round(theirs_extraction / ours_extraction, 3),
                "ours_extraction_seconds": round(ours_extraction, 2),
                "pytorch_fid_extraction_seconds": round(theirs_extraction, 2),
                "n_images": count,
                "device": args.device,
                "torch_threads": torch.get_num_threads(),
                "standin_weights": info["standin"],
                "ours": "febm score: TF preprocessing, batch 200, channels-last, FID + Inception Score",
                "theirs": "python -m pytorch_fid: its default preprocessing, batch 50, FID only",
                "note": "wall-clock on a possibly shared machine: noisy",
                "provenance": provenance(),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
