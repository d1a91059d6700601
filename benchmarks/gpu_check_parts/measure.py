"""The GPU check's measurements in this process: iteration times, matmul FLOP rates, the Langevin step's counted
FLOPs and time, and ``measure_variant`` (all of one precision/layout variant's numbers)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import torch

from gpu_check_parts.common import (
    Scale,
    Variant,
    one_line,
    peak_mb,
    random_data,
    reset_peak,
    synchronise,
    train_settings,
)


def time_iterations(trainer, scale: Scale, device: torch.device, warmup: int | None = None) -> dict[str, Any]:
    reset_peak(device)
    first = []
    for _ in range(scale.warmup if warmup is None else warmup):
        synchronise(device)
        start = time.perf_counter()
        trainer.step()
        synchronise(device)
        first.append(time.perf_counter() - start)
    seconds = []
    for _ in range(scale.timed):
        synchronise(device)
        start = time.perf_counter()
        trainer.step()
        synchronise(device)
        seconds.append(time.perf_counter() - start)
    return {
        "median_seconds": statistics.median(seconds),
        "seconds": seconds,
        "warmup_seconds": first,
        "peak_memory_mb": peak_mb(device),
    }


# --- matmul and Langevin rates ------------------------------------------------------------------
def matmul_rate(device: torch.device, dtype: torch.dtype, n: int, tf32: bool = False) -> dict[str, float]:
    """Median and best FLOP rate of n x n products (2 n^3 FLOPs each), in batches of 10 after warm-up."""
    previous = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = tf32
    try:
        a = torch.randn(n, n, device=device, dtype=dtype)
        b = torch.randn(n, n, device=device, dtype=dtype)
        for _ in range(3):
            a @ b
        rates = []
        for _ in range(5):
            synchronise(device)
            start = time.perf_counter()
            for _ in range(10):
                a @ b
            synchronise(device)
            rates.append(10 * 2 * n**3 / (time.perf_counter() - start))
        return {"median_flops_per_second": statistics.median(rates), "best_flops_per_second": max(rates)}
    finally:
        torch.backends.cuda.matmul.allow_tf32 = previous


def measure_matmul(device: torch.device, n: int) -> dict[str, Any]:
    result: dict[str, Any] = {"n": n, "float32": matmul_rate(device, torch.float32, n)}
    result["tf32"] = matmul_rate(device, torch.float32, n, tf32=True) if device.type == "cuda" else None
    result["bf16"] = matmul_rate(device, torch.bfloat16, n)
    return result


def langevin_step_flops(network: torch.nn.Module, batch: int, device: torch.device) -> float:
    """FLOPs of one sampler step at ``batch``: forward plus input gradient of E (counted, not estimated)."""
    from torch.utils.flop_counter import FlopCounterMode

    from febm.images.spectral import frozen_for_sampling

    x = torch.rand(batch, 3, 32, 32, device=device)
    y = torch.arange(batch, device=device) % 10
    counter = FlopCounterMode(display=False)
    with frozen_for_sampling(network), counter:
        # A non-leaf input, as in the sampler's step: the counter's module hooks cannot follow
        # autograd.grad to a leaf.
        inputs = x.clone().requires_grad_(True) * 1.0
        torch.autograd.grad(network(inputs, y).sum(), inputs)
    return float(counter.get_total_flops())


def time_langevin(
    network: torch.nn.Module,
    sampler: dict[str, Any],
    batch: int,
    steps: int,
    repeats: int,
    variant: Variant,
    device: torch.device,
) -> float:
    """Median seconds per Langevin step of ``febm.images.sampler.langevin`` (runs of ``steps`` steps)."""
    from febm.images.sampler import langevin

    generator = torch.Generator(device).manual_seed(0)
    x = torch.rand(batch, 3, 32, 32, device=device, generator=generator)
    y = torch.arange(batch, device=device) % 10
    options = {
        "step_size": sampler["step_size"],
        "noise_std": sampler["noise_std"],
        "grad_clip": sampler["grad_clip"],
        "generator": generator,
        "precision": variant.precision,
        "channels_last": variant.channels_last,
    }
    langevin(network, x, y, steps=min(steps, 2), **options)  # warm-up
    per_step = []
    for _ in range(repeats):
        synchronise(device)
        start = time.perf_counter()
        langevin(network, x, y, steps=steps, **options)
        synchronise(device)
        per_step.append((time.perf_counter() - start) / steps)
    return statistics.median(per_step)


def langevin_rates(
    seconds_per_step: float, flops_per_step: float, precision: str, matmul: dict[str, Any]
) -> dict[str, Any]:
    rate = flops_per_step / seconds_per_step
    fractions = {}
    for name in ("bf16",) if precision == "bf16" else ("float32", "tf32"):
        if matmul.get(name):
            fractions[f"of_{name}_matmul"] = rate / matmul[name]["median_flops_per_second"]
    return {
        "seconds_per_step": seconds_per_step,
        "flops_per_step": flops_per_step,
        "flops_per_second": rate,
        "fraction": fractions,
    }


# --- one variant, all its measurements ----------------------------------------------------------
def measure_variant(
    config: dict[str, Any],
    dataset: str,
    scale: Scale,
    variant: Variant,
    device: torch.device,
    flops: dict[str, float],
    matmul: dict[str, Any],
    extra_recipes: bool,
    progress: Callable[[dict[str, Any]], None] = lambda result: None,
) -> dict[str, Any]:
    """f-EBM iteration time (plus CD and the two-sampler-run recipe when ``extra_recipes``) and the
    Langevin step rate at the training batch and the evaluation batch. ``progress`` gets the partial
    result after each part (the compile child saves it, so a timeout still leaves what was measured)."""
    from febm.images.training import ImageTrainer

    data = random_data(dataset, scale.data_images, device)
    sampler = config["images"][dataset]["sampler"]
    result: dict[str, Any] = {"variant": asdict(variant)}
    recipes = [("febm", "febm", False)]
    if extra_recipes:
        recipes += [("febm_two_sampler_runs", "febm", True), ("cd", "cd", False)]
    for key, method, second_run in recipes:
        try:
            trainer = ImageTrainer(
                train_settings(config, dataset, scale, variant, method, second_run), data, device
            )
            if variant.compile:
                # In place, so the sampler and the training forward both call the compiled network;
                # static shapes: the trainer only ever uses two batch sizes (batch and 2 x batch).
                trainer.energy.compile(backend=variant.compile, dynamic=False)
            # The first iterations of a compiled network include compilation: warm up longer.
            result[key] = time_iterations(
                trainer, scale, device, warmup=scale.warmup + 1 if variant.compile else None
            )
            progress(result)
        except Exception as error:  # a failed variant is a result, not a crash
            result[key] = {"error": one_line(error)}
            if variant.compile:
                return result
            continue
        if key == "febm":
            network = trainer.energy
            try:
                train_step = time_langevin(
                    network, sampler, scale.batch, scale.steps, scale.langevin_repeats, variant, device
                )
                result["langevin_train_batch"] = langevin_rates(
                    train_step, flops["train_batch"], variant.precision, matmul
                )
                if not variant.compile:  # a new batch size would only add a recompilation
                    eval_step = time_langevin(
                        network,
                        sampler,
                        scale.eval_batch,
                        scale.steps,
                        scale.langevin_repeats,
                        variant,
                        device,
                    )
                    result["langevin_eval_batch"] = langevin_rates(
                        eval_step, flops["eval_batch"], variant.precision, matmul
                    )
            except Exception as error:
                result["langevin_error"] = one_line(error)
        del trainer
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return result
