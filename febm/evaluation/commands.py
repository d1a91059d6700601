"""Command-line entry points of the evaluation stage (see febm/cli.py and docs/DESIGN.md).

fetch-inception, fid-stats, score, image-table, image-figure. Heavy imports stay inside the handlers so
that ``febm --help`` stays fast.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

FIGURES = ("grid", "process", "denoise", "inpaint", "neighbours")


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Register this stage's subcommands; heavy imports belong inside the handlers."""
    fetch = subparsers.add_parser(
        "fetch-inception",
        help="place pytorch-fid's Inception weights (download, local copy, or a marked stand-in)",
        description="Download pt_inception-2015-12-05-6726825d.pth (pytorch-fid's URL, 30 s timeout), or copy "
        "it from --from / the config / the torch hub cache; checks the layout before installing it.",
    )
    fetch.add_argument("--out", required=True, type=Path, help="where the weights go")
    fetch.add_argument(
        "--from", dest="source", type=Path, help="a local copy of the weights to check and install"
    )
    fetch.add_argument(
        "--config", nargs="+", help="config(s); evaluation.inception.weights is used as --from"
    )
    fetch.add_argument(
        "--standin",
        action="store_true",
        help="write Kaiming-random weights of the identical layout instead (smoke preset and tests only; "
        "marked by a .standin.json sidecar and in every score)",
    )
    fetch.add_argument("--seed", type=int, default=0, help="seed of the stand-in weights")
    fetch.set_defaults(handler=fetch_inception)

    stats = subparsers.add_parser(
        "fid-stats", help="Inception mean/covariance of a dataset's reference images"
    )
    stats.add_argument("--config", nargs="+", required=True)
    stats.add_argument("--dataset", required=True, choices=["cifar10", "celeba32"])
    stats.add_argument("--data", required=True, type=Path, help="prepared data .npz (febm prepare-data)")
    stats.add_argument(
        "--weights", type=Path, help="Inception weights (default: config, then torch hub cache)"
    )
    stats.add_argument("--out", required=True, type=Path, help="statistics .npz (mu, sigma, meta)")
    stats.set_defaults(handler=fid_stats)

    score = subparsers.add_parser(
        "score",
        help="FID and Inception Score of a .npz of uint8 images or a folder of PNGs; prints JSON",
    )
    score.add_argument(
        "--images", required=True, type=Path, help="samples .npz (key 'images') or image folder"
    )
    score.add_argument("--ref-stats", required=True, type=Path, help="reference statistics from fid-stats")
    score.add_argument(
        "--weights", type=Path, help="Inception weights (default: config, then torch hub cache)"
    )
    score.add_argument("--out", type=Path, help="write the JSON here too (atomically)")
    score.add_argument(
        "--config", nargs="+", help="config(s); default: the schema's defaults (paper protocol)"
    )
    score.add_argument("--key", help="array name inside the .npz (default: images)")
    for label in ("dataset", "method", "divergence"):
        score.add_argument(f"--{label}", help=f"{label} of the run (default: the samples' metadata)")
    score.add_argument("--seed", type=int, help="seed of the run (default: the samples' metadata)")
    score.set_defaults(handler=score_images)

    table = subparsers.add_parser(
        "image-table", help="Table 1 (CIFAR-10) or 2 (CelebA) with the paper's values"
    )
    table.add_argument("--table", required=True, type=int, choices=[1, 2])
    table.add_argument("--config", nargs="+", required=True)
    table.add_argument("--scores", nargs="*", default=[], type=Path, help="score JSON files from febm score")
    table.add_argument("--paper", required=True, type=Path, help="febm/data/reported_results.csv")
    table.add_argument("--out", required=True, type=Path)
    table.set_defaults(handler=image_table)

    figure = subparsers.add_parser(
        "image-figure",
        help="sample figures: uncurated grid, sampling process, denoising, inpainting, nearest neighbours",
    )
    figure.add_argument("--figure", required=True, choices=FIGURES)
    figure.add_argument("--config", nargs="+", required=True)
    figure.add_argument("--out", required=True, type=Path, help="PNG file")
    figure.add_argument("--images", type=Path, help="samples .npz (grid, neighbours)")
    figure.add_argument("--checkpoint", type=Path, help="model.pt (process, denoise, inpaint)")
    figure.add_argument("--data", type=Path, help="prepared data .npz (denoise, inpaint, neighbours)")
    figure.add_argument("--seed", type=int, default=0)
    figure.set_defaults(handler=image_figure)


def _config(paths: list[str] | None) -> dict[str, Any]:
    from febm.config import load_config, validate

    return load_config(paths) if paths else validate({})


def fetch_inception(args: argparse.Namespace) -> int:
    from febm.evaluation import weights

    if args.standin:
        path = weights.write_standin(args.out, seed=args.seed)
        print(
            f"wrote STAND-IN Inception weights (Kaiming-random, seed {args.seed}) to {path}; not for results"
        )
        return 0
    source = args.source
    if source is None and args.config:
        configured = _config(args.config)["evaluation"]["inception"]["weights"]
        source = Path(configured) if configured else None
    if source is not None:
        if not source.is_file():
            raise weights.InceptionWeightsError(f"--from {str(source)!r} does not exist")
        if source.resolve() != args.out.resolve():
            weights.load_state_dict(source)
            from febm.io import write_bytes_atomic

            write_bytes_atomic(args.out, source.read_bytes())
        weights.standin_sidecar(args.out).unlink(missing_ok=True)
    elif args.out.is_file() and not weights.weights_info(args.out)["standin"]:
        weights.load_state_dict(args.out)  # already there: check it, never download again
    else:
        weights.download_weights(args.out)
    info = weights.weights_info(args.out)
    print(json.dumps({"weights": info}, indent=2))
    return 0


def fid_stats(args: argparse.Namespace) -> int:
    from febm.evaluation.scoring import compute_reference_stats

    meta = compute_reference_stats(_config(args.config), args.dataset, args.data, args.weights, args.out)
    print(json.dumps({key: meta[key] for key in ("dataset", "reference_set", "n", "preprocessing")}))
    return 0


def score_images(args: argparse.Namespace) -> int:
    from febm.evaluation.image_files import load_image_set
    from febm.evaluation.scoring import score_image_set
    from febm.io import write_json_atomic

    run_labels = {
        "dataset": args.dataset,
        "method": args.method,
        "divergence": args.divergence,
        "seed": args.seed,
    }
    record = score_image_set(
        load_image_set(args.images, args.key), args.ref_stats, args.weights, _config(args.config), run_labels
    )
    if args.out:
        write_json_atomic(args.out, record)
    if record["standin_weights"]:
        print("febm score: warning: STAND-IN Inception weights; these are not FID/IS values", file=sys.stderr)
    print(json.dumps(record, indent=2, default=str))
    return 0


def image_table(args: argparse.Namespace) -> int:
    from febm.evaluation.tables import build_table, read_paper_values, read_scores
    from febm.results_schema import write_results

    config = _config(args.config)
    rows = build_table(
        args.table, read_scores(args.scores), read_paper_values(args.paper, args.table), config["preset"]
    )
    write_results(rows, args.out)
    print(f"wrote Table {args.table} ({len(rows)} rows) to {args.out}")
    return 0


def _require(args: argparse.Namespace, *names: str) -> None:
    from febm.errors import FebmError

    missing = [f"--{name}" for name in names if getattr(args, name) is None]
    if missing:
        raise FebmError(f"--figure {args.figure} needs {' and '.join(missing)}")


def image_figure(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from febm.evaluation import figures
    from febm.evaluation.image_files import load_image_set
    from febm.evaluation.scoring import resolve_device

    config = _config(args.config)
    evaluation = config["evaluation"]
    settings = evaluation["figures"]
    device = resolve_device(evaluation["device"])
    generator = torch.Generator(device=device).manual_seed(args.seed)
    if args.figure in ("grid", "neighbours"):
        _require(args, "images")
        samples = load_image_set(args.images)
    if args.figure in ("process", "denoise", "inpaint"):
        _require(args, "checkpoint")
        from febm.images.checkpoint import load_energy_model

        energy, meta = load_energy_model(args.checkpoint, device)
        num_classes = int(meta["network"].get("num_classes", 0)) or None
    if args.figure in ("denoise", "inpaint", "neighbours"):
        _require(args, "data")
        with np.load(args.data, allow_pickle=False) as archive:
            data_images, data_labels = archive["images"], archive["labels"]

    if args.figure == "grid":
        labels = samples.labels
        if labels is not None and labels.max() >= settings["grid_rows"]:
            labels = None  # more classes than rows: plain sample order
        tiles = figures.uncurated_tiles(samples.images, labels, settings["grid_rows"], settings["grid_cols"])
    elif args.figure == "process":
        tiles = figures.sampling_process(
            energy,
            settings["process_chains"],
            num_classes,
            settings["process_steps"],
            settings["process_snapshots"],
            evaluation["paper_protocol"],
            generator,
            device,
        )
    elif args.figure in ("denoise", "inpaint"):
        count = settings["neighbours_samples"]
        tiles = figures.restore(
            energy,
            data_images[:count],
            data_labels[:count] if num_classes else None,
            args.figure,
            settings["restore_steps"],
            evaluation["paper_protocol"],
            generator,
            device,
            noise_std=settings["denoise_noise_std"],
        )
    else:
        tiles = figures.nearest_neighbours(
            samples.images[: settings["neighbours_samples"]], data_images, settings["neighbours_k"]
        )
    # The run identity comes from the input's own record (the samples', else the checkpoint's), not --out.
    if args.figure in ("grid", "neighbours"):
        text = figures.identity_text(args.figure, samples.metadata, str(args.images))
    else:
        text = figures.identity_text(args.figure, meta, str(args.checkpoint))
    figures.write_png(args.out, figures.tile_grid(tiles), text=text)
    print(f"wrote {args.figure} figure to {args.out}")
    return 0
