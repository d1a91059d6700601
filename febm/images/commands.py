"""Command-line entry points of the image study (see febm/cli.py and docs/DESIGN.md).

* ``febm make-standins --kind {cifar10,celeba,fashion_mnist} --out DIR``
* ``febm prepare-data --config C --dataset {cifar10,celeba32,fashion_mnist} --root DIR --out DIR/DS.npz``
* ``febm train-images --config C --dataset DS --method {febm,cd,dual} --divergence D --seed S --data NPZ
  --out-dir OUT --checkpoint-dir CKPT`` (several GPUs: ``torchrun --nproc_per_node=K -m febm train-images ...``)
* ``febm sample --checkpoint model.pt --n N --protocol {plain,paper,replay} [--replay replay.npz] --out samples.npz [--config C]``
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from febm.runspec import IMAGE_METHODS


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Register this stage's subcommands; heavy imports belong inside the handlers."""
    standins = subparsers.add_parser(
        "make-standins",
        help="write stand-in image data in the real on-disk formats (smoke preset and tests only)",
    )
    standins.add_argument("--kind", required=True, choices=["cifar10", "celeba", "fashion_mnist"])
    standins.add_argument("--out", required=True, type=Path, help="data root (the layout goes below it)")
    standins.add_argument(
        "--count",
        type=int,
        default=None,
        help="images per CIFAR-10 batch file / CelebA images / Fashion-MNIST train images (test: a fifth)",
    )
    standins.add_argument("--seed", type=int, default=0)
    standins.set_defaults(handler=make_standins_command)

    prepare = subparsers.add_parser(
        "prepare-data",
        help="decode CIFAR-10 / CelebA / Fashion-MNIST once into a uint8 .npz (download where allowed)",
    )
    prepare.add_argument("--config", required=True, nargs="+", type=Path)
    prepare.add_argument("--dataset", required=True, choices=["cifar10", "celeba32", "fashion_mnist"])
    prepare.add_argument("--root", required=True, type=Path, help="raw data root, e.g. resources/data")
    prepare.add_argument("--out", required=True, type=Path, help="e.g. resources/data/cifar10.npz")
    prepare.set_defaults(handler=prepare_data_command)

    train = subparsers.add_parser("train-images", help="train an f-EBM or CD energy network on images")
    train.add_argument("--config", required=True, nargs="+", type=Path)
    train.add_argument("--dataset", required=True, choices=["cifar10", "celeba32", "fashion_mnist"])
    train.add_argument("--method", required=True, choices=list(IMAGE_METHODS))
    train.add_argument("--divergence", required=True, help="f-divergence (cd: kl)")
    train.add_argument("--seed", required=True, type=int)
    train.add_argument("--data", required=True, type=Path, help="the .npz from prepare-data")
    train.add_argument("--out-dir", required=True, type=Path)
    train.add_argument("--checkpoint-dir", required=True, type=Path, help="resumable training state")
    train.add_argument(
        "--classifier",
        type=Path,
        default=None,
        help="classifier .pt (febm train-classifier) that scores the replay buffer every "
        "training.monitor_interval iterations into monitor.csv (and, on Fashion-MNIST with "
        "evaluation.checkpoint_selection: best_is, selects the best checkpoint)",
    )
    train.add_argument(
        "--inception-weights",
        type=Path,
        default=None,
        help="Inception weights (febm fetch-inception) for best-IS checkpoint selection on CIFAR-10 / CelebA "
        "(evaluation.checkpoint_selection: best_is; default: evaluation.inception.weights, the hub cache)",
    )
    train.set_defaults(handler=train_images_command)

    sample = subparsers.add_parser("sample", help="draw images from a trained energy network (model.pt)")
    sample.add_argument("--checkpoint", required=True, type=Path, help="model.pt written by train-images")
    sample.add_argument("--n", required=True, type=int, help="number of images")
    sample.add_argument("--protocol", required=True, choices=["plain", "paper", "replay"])
    sample.add_argument(
        "--replay",
        type=Path,
        default=None,
        help="replay.npz written by train-images beside model.pt (protocol replay only)",
    )
    sample.add_argument("--out", required=True, type=Path, help="samples .npz (images uint8 NHWC, labels)")
    sample.add_argument(
        "--config",
        nargs="+",
        type=Path,
        default=None,
        help="for evaluation.* protocol settings (default: schema)",
    )
    sample.add_argument("--seed", type=int, default=None, help="default: evaluation.sample_seed")
    sample.add_argument(
        "--device", choices=["auto", "cpu", "cuda"], default=None, help="default: evaluation.device"
    )
    sample.set_defaults(handler=sample_command)


def make_standins_command(args: argparse.Namespace) -> int:
    from febm.images.standins import (
        make_celeba_standins,
        make_cifar10_standins,
        make_fashion_mnist_standins,
    )

    if args.kind == "cifar10":
        folder = make_cifar10_standins(args.out, per_batch=args.count or 20, seed=args.seed)
    elif args.kind == "fashion_mnist":
        train_count = args.count or 100
        folder = make_fashion_mnist_standins(
            args.out, train_count=train_count, test_count=max(10, train_count // 50 * 10), seed=args.seed
        )
    else:
        folder = make_celeba_standins(args.out, count=args.count or 24, seed=args.seed)
    print(f"stand-in {args.kind} data written to {folder} (not for results)")
    return 0


def prepare_data_command(args: argparse.Namespace) -> int:
    from febm.config import load_config
    from febm.images.prepare import prepare_data

    summary = prepare_data(load_config(args.config), args.dataset, args.root, args.out)
    print(json.dumps(summary))
    return 0


def train_images_command(args: argparse.Namespace) -> int:
    from febm.config import load_config
    from febm.images.run import train_images

    scorer = None
    if args.classifier is not None:
        from febm.images.monitor import ClassifierMonitor

        scorer = ClassifierMonitor(args.classifier, args.data)
    config = load_config(args.config)
    metrics = train_images(
        config,
        dataset=args.dataset,
        method=args.method,
        divergence=args.divergence,
        seed=args.seed,
        data_path=args.data,
        out_dir=args.out_dir,
        checkpoint_dir=args.checkpoint_dir,
        scorer=scorer,
        best_scorer=_best_scorer(config, args, scorer),
    )
    if metrics:
        print(
            json.dumps(
                {key: metrics[key] for key in ("dataset", "method", "divergence", "seed", "iterations")}
            )
        )
    return 0


def _best_scorer(config: dict, args: argparse.Namespace, classifier_monitor: Any) -> Any:
    """The best-IS scorer (febm.images.monitor): None unless evaluation.checkpoint_selection is best_is."""
    if config["evaluation"]["checkpoint_selection"] != "best_is":
        return None
    if args.dataset == "fashion_mnist":  # no Inception statistics: the classifier's IS formula
        if classifier_monitor is None:
            from febm.images.monitor import ClassifierMonitor

            if args.classifier is None:
                return None  # train_images names the missing argument
            classifier_monitor = ClassifierMonitor(args.classifier, args.data)
        return classifier_monitor
    from febm.evaluation.weights import resolve_weights_path
    from febm.images.monitor import InceptionScorer

    weights = resolve_weights_path(args.inception_weights, config["evaluation"]["inception"]["weights"])
    return InceptionScorer(weights, config["evaluation"], device=config["images"]["device"])


def sample_command(args: argparse.Namespace) -> int:
    from febm.images.sampling import sample_to_file

    summary = sample_to_file(
        checkpoint=args.checkpoint,
        count=args.n,
        protocol=args.protocol,
        replay=args.replay,
        out=args.out,
        config_paths=args.config,
        seed=args.seed,
        device=args.device,
    )
    print(json.dumps(summary))
    return 0
