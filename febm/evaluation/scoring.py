"""Reference statistics and scores as the commands compute them, with everything a number must state."""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from febm.config import config_hash
from febm.errors import FebmError
from febm.evaluation.extract import InceptionOutputs, run_inception
from febm.evaluation.image_files import ImageSet
from febm.evaluation.inception import load_fid_inception
from febm.evaluation.metrics import frechet_distance, frechet_distance_to_features, inception_score
from febm.evaluation.reference import load_reference_stats, save_reference_stats, select_reference_images
from febm.evaluation.weights import resolve_weights_path, weights_info
from febm.fidelity import score_fidelity
from febm.io import provenance

PAPER_NUM_SAMPLES = 50_000


class ScoringError(FebmError):
    """Samples and reference statistics that cannot be compared, or too few samples."""


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise FebmError("evaluation.device is 'cuda' but no CUDA device is visible; use 'auto' or 'cpu'")
    return torch.device(name)


def _inception_pass(
    images: np.ndarray,
    weights: Path,
    evaluation: Mapping[str, Any],
    description: str,
    keep_pool3: bool = False,
) -> InceptionOutputs:
    settings = evaluation["inception"]
    device = resolve_device(evaluation["device"])
    model = load_fid_inception(
        weights, device, preprocessing=settings["preprocessing"], channels_last=settings["channels_last"]
    )
    return run_inception(
        images, model, batch_size=settings["batch_size"], keep_pool3=keep_pool3, description=description
    )


def compute_reference_stats(
    config: Mapping[str, Any],
    dataset: str,
    data_path: str | Path,
    weights: str | Path | None,
    out: str | Path,
) -> dict[str, Any]:
    """Select the configured reference set, run the Inception pass, save ``mu``/``sigma``/meta to ``out``."""
    started = time.time()
    evaluation = config["evaluation"]
    reference_config = evaluation["reference"][dataset]
    weights_path = resolve_weights_path(weights, evaluation["inception"]["weights"])
    reference = select_reference_images(
        data_path,
        dataset,
        reference_config["set"],
        reference_config["max_images"],
        evaluation["reference"]["subset_seed"],
    )
    outputs = _inception_pass(reference.images, weights_path, evaluation, f"reference {dataset}")
    weights = weights_info(weights_path)
    meta = {
        "dataset": dataset,
        "reference_set": reference.reference_set,
        "n": outputs.count,
        "full_set_size": reference.full_size,
        "subset_seed": evaluation["reference"]["subset_seed"]
        if outputs.count < reference.full_size
        else None,
        "preprocessing": evaluation["inception"]["preprocessing"],
        "weights_sha256": weights["sha256"],
        "standin_weights": weights["standin"],
        "standin_data": reference.standin_data,
        "data_path": str(data_path),
        "data_source": reference.source,
        "preset": config.get("preset"),
        "config_hash": config_hash(config),
        "provenance": provenance(),
        "wall_seconds": round(time.time() - started, 3),
    }
    save_reference_stats(out, outputs.mu, outputs.sigma, meta)
    return meta


def _check_comparable(reference: Mapping[str, Any], preprocessing: str, weights: Mapping[str, Any]) -> None:
    if not reference:
        print(
            "febm score: warning: the reference statistics carry no metadata (a pytorch-fid stats file?); "
            f"they must have been made with {preprocessing!r} preprocessing and the same weights",
            file=sys.stderr,
        )
        return
    if reference.get("preprocessing") != preprocessing:
        raise ScoringError(
            f"the reference statistics use {reference.get('preprocessing')!r} preprocessing, this score "
            f"{preprocessing!r}; set evaluation.inception.preprocessing to match or recompute them with fid-stats"
        )
    if reference.get("weights_sha256") != weights["sha256"]:
        raise ScoringError(
            "the reference statistics were computed with other Inception weights "
            f"(SHA-256 {str(reference.get('weights_sha256'))[:12]} vs {weights['sha256'][:12]}); "
            "recompute them with `febm fid-stats` and these weights"
        )


def _scale(n_samples: int, reference: Mapping[str, Any]) -> str:
    reduced = []
    if n_samples != PAPER_NUM_SAMPLES:
        reduced.append(f"{n_samples} samples (paper: {PAPER_NUM_SAMPLES})")
    if reference.get("n") is not None and reference.get("n") != reference.get("full_set_size"):
        reduced.append(f"reference subset of {reference.get('n')} images")
    return "paper" if not reduced else "reduced: " + ", ".join(reduced)


def score_image_set(
    image_set: ImageSet,
    ref_stats: str | Path,
    weights: str | Path | None,
    config: Mapping[str, Any],
    run_labels: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """FID against ``ref_stats`` and Inception Score of ``image_set``, with the protocol stated."""
    started = time.time()
    evaluation = config["evaluation"]
    splits = evaluation["inception_score"]["splits"]
    if len(image_set.images) < max(2, splits):
        raise ScoringError(
            f"{image_set.source}: {len(image_set.images)} images; the Inception Score needs at least "
            f"evaluation.inception_score.splits = {splits} (and FID at least 2)"
        )
    weights_path = resolve_weights_path(weights, evaluation["inception"]["weights"])
    weights = weights_info(weights_path)
    mu_ref, sigma_ref, reference = load_reference_stats(ref_stats)
    preprocessing = evaluation["inception"]["preprocessing"]
    _check_comparable(reference, preprocessing, weights)
    metadata = dict(image_set.metadata)
    model = metadata.get("model") or {}  # febm sample's record nests the checkpoint's metadata here

    def fact(key: str, default: Any = None) -> Any:
        return metadata.get(key, model.get(key, default))

    labels = {key: fact(key) for key in ("dataset", "method", "divergence", "seed")}
    labels.update({key: value for key, value in (run_labels or {}).items() if value is not None})
    if labels["dataset"] is None:
        labels["dataset"] = reference.get("dataset")
    if reference.get("dataset") and labels["dataset"] != reference.get("dataset"):
        raise ScoringError(
            f"the samples are from {labels['dataset']!r} but the reference statistics are {reference.get('dataset')!r}"
        )
    selection = fact("checkpoint_selection", "final")
    if selection != evaluation["checkpoint_selection"]:
        print(
            f"febm score: warning: evaluation.checkpoint_selection is {evaluation['checkpoint_selection']!r} "
            f"but the samples come from a {selection!r} checkpoint ({metadata.get('checkpoint')}); the score "
            "states the checkpoint's own selection",
            file=sys.stderr,
        )
    # Fewer samples than feature dimensions (smoke runs): the exact n x n form needs the features.
    small_set = len(image_set.images) <= mu_ref.size
    outputs = _inception_pass(image_set.images, weights_path, evaluation, "samples", keep_pool3=small_set)
    if small_set:
        fid = frechet_distance_to_features(outputs.pool3, mu_ref, sigma_ref)
    else:
        fid = frechet_distance(outputs.mu, outputs.sigma, mu_ref, sigma_ref)
    is_mean, is_std, is_per_split = inception_score(
        outputs.logits, splits=splits, shuffle_seed=evaluation["inception_score"]["shuffle_seed"]
    )
    standin_data = bool(reference.get("standin_data", False) or fact("standin_data", False))
    return {
        **labels,
        "fid": fid,
        "inception_score": is_mean,
        "inception_score_std": is_std,
        "inception_score_per_split": is_per_split,
        "inception_score_splits": splits,
        "inception_score_shuffle_seed": evaluation["inception_score"]["shuffle_seed"],
        "n_samples": outputs.count,
        "samples": image_set.source,
        "protocol": metadata.get("protocol", "unknown"),
        "protocol_settings": metadata.get("settings", metadata.get("protocol_settings")),
        "checkpoint": metadata.get("checkpoint"),
        # What the sampled checkpoint states about itself (model.pt / model_best.pt, febm train-images):
        # files without the field are final ones. The config's choice is what the workflow wired up.
        "checkpoint_selection": selection,
        "fidelity": score_fidelity(metadata, config, labels["dataset"]),
        "checkpoint_iteration": fact("iterations"),
        "best_checkpoint": fact("best_checkpoint"),
        "training_iterations": fact("iterations"),
        "reference": {
            "path": str(ref_stats),
            **{
                key: reference.get(key)
                for key in ("dataset", "reference_set", "n", "full_set_size", "preprocessing", "standin_data")
            },
        },
        "preprocessing": preprocessing,
        "weights": weights,
        "standin_weights": weights["standin"],
        "standin_data": standin_data,
        "standin": {"weights": weights["standin"], "data": standin_data},
        "preset": fact("preset", config.get("preset")),
        "scale": _scale(outputs.count, reference),
        "config_hash": config_hash(config),
        "provenance": provenance(),
        "wall_seconds": round(time.time() - started, 3),
    }
