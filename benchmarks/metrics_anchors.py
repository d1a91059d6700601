"""Check our IS/FID against published TF-parity anchors; needs the REAL weights and CIFAR-10. Prints JSON.

Anchors (torch-fidelity v0.4.0, whose features match the TF graph to ~1e-4; docs/metrics.md §6):
* IS of the CIFAR-10 train set (50,000 images, permuted with RandomState(2020), 10 splits) = 11.23678
  (± 0.0951 over splits); torch-fidelity's own test tolerance is 5e-3 relative.
* FID between 5,000 train and 5,000 test images, each chosen by RandomState(2020).choice(N, 5000,
  replace=False) = 10.3233274 (± 1e-4 in torch-fidelity's tests; we allow 1e-3 relative).

Uses ``tf`` preprocessing (the TF graph's). The train images must be in torchvision's order (data_batch_1..5),
as ``febm prepare-data`` writes them. On a CPU this takes hours (55,000+ images at 299x299); use a GPU.

    python benchmarks/metrics_anchors.py --data resources/data/cifar10.npz --weights W [--device cuda]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from febm.evaluation.extract import run_inception
from febm.evaluation.inception import load_fid_inception
from febm.evaluation.metrics import frechet_distance, inception_score
from febm.evaluation.weights import weights_info
from febm.io import provenance

IS_TRAIN_ANCHOR, IS_RELATIVE_TOLERANCE = 11.23678, 5e-3
FID_SUBSETS_ANCHOR, FID_RELATIVE_TOLERANCE = 10.3233274, 1e-3


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", required=True, type=Path, help="prepared cifar10.npz (images, test_images)")
    parser.add_argument("--weights", required=True, type=Path)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch-size", type=int, default=500)
    args = parser.parse_args()
    started = time.time()
    with np.load(args.data, allow_pickle=False) as archive:
        train, test = archive["images"], archive["test_images"]
        standin_data = bool(archive["standin"]) if "standin" in archive.files else False
    model = load_fid_inception(args.weights, args.device, preprocessing="tf")

    train_outputs = run_inception(
        train, model, batch_size=args.batch_size, keep_pool3=True, description="train"
    )
    is_mean, is_std, _ = inception_score(train_outputs.logits, splits=10, shuffle_seed=2020)
    train_subset = np.random.RandomState(2020).choice(len(train), 5000, replace=False)
    test_subset = np.random.RandomState(2020).choice(len(test), 5000, replace=False)
    train_features = train_outputs.pool3[train_subset].astype(np.float64)
    test_outputs = run_inception(test[test_subset], model, batch_size=args.batch_size, description="test")
    fid = frechet_distance(
        train_features.mean(0), np.cov(train_features, rowvar=False), test_outputs.mu, test_outputs.sigma
    )
    weights = weights_info(args.weights)
    print(
        json.dumps(
            {
                "inception_score_train50k": is_mean,
                "inception_score_train50k_std": is_std,
                "inception_score_anchor": IS_TRAIN_ANCHOR,
                "inception_score_relative_error": abs(is_mean / IS_TRAIN_ANCHOR - 1),
                "inception_score_within_tolerance": abs(is_mean / IS_TRAIN_ANCHOR - 1)
                < IS_RELATIVE_TOLERANCE,
                "fid_train5k_test5k": fid,
                "fid_anchor": FID_SUBSETS_ANCHOR,
                "fid_relative_error": abs(fid / FID_SUBSETS_ANCHOR - 1),
                "fid_within_tolerance": abs(fid / FID_SUBSETS_ANCHOR - 1) < FID_RELATIVE_TOLERANCE,
                "n_train": len(train),
                "n_test": len(test),
                "weights": weights,
                "standin_weights": weights["standin"],
                "standin_data": standin_data,
                "wall_seconds": round(time.time() - started, 1),
                "provenance": provenance(),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
