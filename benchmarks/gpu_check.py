"""GPU check of the image trainer at paper scale; prints one JSON object (issue 13, item 5).

    python benchmarks/gpu_check.py [--config config/config.yaml ...] [--out gpu_check.json]
    python benchmarks/gpu_check.py --device cpu --quick        # seconds: a smoke test of the code path

On a CUDA machine, with the settings of ``images.<dataset>`` (CIFAR-10 by default: width 128, batch 128,
60 Langevin steps), on random data of the CIFAR-10 shape, with the trainer built as the pipeline builds it
(``TrainSettings.from_config`` + ``ImageTrainer``):

* ``iteration``: seconds of one training iteration (median after warm-up, ``torch.cuda.synchronize`` around
  each) for f-EBM in float32, bf16 (``training.precision``), channels-last (``training.channels_last``) and
  ``torch.compile`` of the energy network (compiled in a child process with a time limit: an error or a
  timeout is recorded, not raised); CD and f-EBM with the released code's second sampler run for the
  as-configured and the fastest eager variant; peak GPU memory of each;
* ``langevin``: FLOPs of one sampler step (forward + input gradient of E, counted by
  ``torch.utils.flop_counter.FlopCounterMode``) over its measured time, against ``matmul``: the GPU's
  measured dense float32, TF32 and bf16 rate on square products (8192^2);
* ``ddp``: iterations across all visible GPUs (``torch.multiprocessing`` spawn, nccl), or the reason skipped;
* ``projection``: GPU-hours of the paper's Table 1 (CIFAR-10) and Table 2 (CelebA 32x32) grids, training
  plus evaluation (``evaluation.paper_protocol``: calls x steps per call at its batch, from the measured
  Langevin step time), with every assumption named.

Without CUDA (and without ``--device cpu``) it prints one line to stderr, ``{"cuda": false, ...}`` to stdout
and exits 2 at once: nothing was measured, which must not read as a passed check. The whole check is kept
under ``--budget-seconds`` (default 450 s): optional parts that would not fit are skipped with the reason.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import multiprocessing
import os
import socket
import statistics
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = REPO / "config" / "config.yaml"
BF16_TARGET = 0.40  # issue 13: bf16 Langevin step >= 40% of the measured bf16 matmul rate
# README --resume_iter of the released best-IS checkpoints (docs/original-code.md section 6).
RELEASED_BEST_IS_ITERATIONS = {
    "jensen_shannon": 45_900,
    "squared_hellinger": 79_300,
    "reverse_kl": 67_900,
    "kl": 74_800,
}
ORIGINAL_PROCESSES = 4  # Horovod, 4 x 128 images (docs/original-code.md section 6)
TABLES = {"table1": "cifar10", "table2": "celeba32"}


@dataclass(frozen=True)
class Scale:
    width: int
    batch: int
    steps: int
    eval_batch: int
    warmup: int
    timed: int
    langevin_repeats: int
    matmul_n: int
    data_images: int
    replay_capacity: int | None  # None = the config's (10,000 at paper scale)


@dataclass(frozen=True)
class Variant:
    name: str
    precision: str
    channels_last: bool
    compile: str | None = None  # a torch.compile backend, None = eager


EAGER_VARIANTS = (
    Variant("float32", "float32", False),
    Variant("float32_channels_last", "float32", True),
    Variant("bf16", "bf16", False),
    Variant("bf16_channels_last", "bf16", True),
)
COMPILE_NAME = "bf16_channels_last_compile"


def compile_variant(backend: str) -> Variant:
    return Variant(COMPILE_NAME, "bf16", True, compile=backend)


def paper_scale(section: dict[str, Any], eval_batch: int) -> Scale:
    return Scale(
        width=section["network"]["num_filters"],
        batch=section["training"]["batch_size"],
        steps=section["sampler"]["steps"],
        eval_batch=eval_batch,
        warmup=2,
        timed=5,
        langevin_repeats=3,
        matmul_n=8192,
        data_images=20 * section["training"]["batch_size"],
        replay_capacity=None,
    )


QUICK_SCALE = Scale(
    width=8,
    batch=4,
    steps=2,
    eval_batch=8,
    warmup=1,
    timed=1,
    langevin_repeats=1,
    matmul_n=256,
    data_images=16,
    replay_capacity=64,
)


# --- small helpers -------------------------------------------------------------------------------
def synchronise(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_mb(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None


def one_line(error: BaseException) -> str:
    text = f"{type(error).__name__}: {error}".strip()
    return text.splitlines()[0][:500] if text else type(error).__name__


def device_info(device: torch.device) -> dict[str, Any]:
    info: dict[str, Any] = {
        "type": device.type,
        "torch_version": torch.__version__,
        "cuda_version": torch.version.cuda,
        "cudnn_version": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "python_version": sys.version.split()[0],
    }
    if device.type == "cuda":
        properties = torch.cuda.get_device_properties(device)
        info.update(
            name=torch.cuda.get_device_name(device),
            capability=".".join(map(str, torch.cuda.get_device_capability(device))),
            memory_gb=round(properties.total_memory / 2**30, 1),
            visible_gpus=torch.cuda.device_count(),
            # cuDNN runs float32 convolutions in TF32 unless this is False: the "float32" variants use it.
            cudnn_allow_tf32=torch.backends.cudnn.allow_tf32,
            matmul_allow_tf32=torch.backends.cuda.matmul.allow_tf32,
            cudnn_benchmark=torch.backends.cudnn.benchmark,
        )
    else:
        info.update(name=f"cpu ({torch.get_num_threads()} threads)", visible_gpus=0)
    return info


# --- building the trainer as the pipeline does --------------------------------------------------
def random_data(dataset: str, count: int, device: torch.device, seed: int = 0):
    """Random uint8 images of the CIFAR-10 shape (N, 3, 32, 32) with 10-class labels, on ``device``."""
    from febm.images.data import IMAGE_SIZE, ImageData

    generator = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (count, 3, IMAGE_SIZE, IMAGE_SIZE), dtype=torch.uint8, generator=generator)
    labels = torch.randint(0, 10, (count,), generator=generator)
    return ImageData(images.to(device), labels.to(device), 10, True, dataset)


def train_settings(
    config: dict[str, Any], dataset: str, scale: Scale, variant: Variant, method: str, second_run: bool
):
    """``TrainSettings.from_config`` of the config's section with only the benchmarked knobs changed.
    Warm-up (L2-only) iterations are switched off so every timed iteration is a full one."""
    from febm.images.training import TrainSettings
    from febm.runspec import BASELINE_DIVERGENCE

    section = copy.deepcopy(config["images"][dataset])
    section["network"]["num_filters"] = scale.width
    section["sampler"]["steps"] = scale.steps
    if scale.replay_capacity is not None:
        section["replay"]["capacity"] = scale.replay_capacity
    training = section["training"]
    training.update(
        batch_size=scale.batch,
        precision=variant.precision,
        channels_last=variant.channels_last,
        warmup_iterations=0,
        second_sampler_run=second_run,
    )
    divergence = "jensen_shannon" if method == "febm" else BASELINE_DIVERGENCE
    return TrainSettings.from_config(section, method=method, divergence=divergence, seed=0, image_channels=3)


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


# --- isolated children: torch.compile and DDP ---------------------------------------------------
def _compile_child(config, dataset, scale, backend, device_name, flops, matmul, result_path) -> None:
    def save(result: dict[str, Any]) -> None:
        Path(result_path).write_text(json.dumps(result))

    try:
        device = torch.device(device_name)
        if device.type == "cpu":
            torch.set_num_threads(1)
        variant = compile_variant(backend)
        result = measure_variant(
            config, dataset, scale, variant, device, flops, matmul, extra_recipes=False, progress=save
        )
        result["complete"] = True
    except BaseException as error:
        result = {"error": one_line(error), "traceback": traceback.format_exc()[-2000:]}
    save(result)


def _ddp_child(rank, world, port, config, dataset, scale, variant, use_cuda, result_dir) -> None:
    import torch.distributed as dist

    from febm.images.training import ImageTrainer

    result: dict[str, Any]
    try:
        os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
        device = torch.device("cuda", rank) if use_cuda else torch.device("cpu")
        if use_cuda:
            torch.cuda.set_device(device)
        else:
            torch.set_num_threads(1)
        dist.init_process_group("nccl" if use_cuda else "gloo", rank=rank, world_size=world)
        try:
            settings = train_settings(config, dataset, scale, variant, "febm", False)
            data = random_data(dataset, scale.data_images, device)
            trainer = ImageTrainer(settings, data, device, rank=rank, world_size=world)
            result = time_iterations(trainer, scale, device)
        finally:
            dist.destroy_process_group()
    except BaseException as error:
        result = {"error": one_line(error), "traceback": traceback.format_exc()[-2000:]}
    Path(result_dir, f"rank{rank}.json").write_text(json.dumps(result))


def run_children(target, args_per_child: list[tuple], timeout: float) -> str | None:
    """Start one spawned process per argument tuple and wait up to ``timeout`` seconds in all;
    returns None or why they did not all finish."""
    context = multiprocessing.get_context("spawn")
    children = [context.Process(target=target, args=args) for args in args_per_child]
    for child in children:
        child.start()
    deadline = time.monotonic() + timeout
    for child in children:
        child.join(max(0.0, deadline - time.monotonic()))
    late = [child for child in children if child.is_alive()]
    for child in late:
        child.terminate()
        child.join(10)
    if late:
        return f"timed out after {timeout:.0f} s"
    codes = [child.exitcode for child in children if child.exitcode != 0]
    return f"child process exited with code {codes[0]}" if codes else None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def measure_compile(
    config, dataset, scale, backend: str, device, flops, matmul, timeout: float
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder, "compile.json")
        problem = run_children(
            _compile_child,
            [(config, dataset, scale, backend, str(device), flops, matmul, str(path))],
            timeout,
        )
        if path.exists():
            result = json.loads(path.read_text())
            if problem and not result.get("complete"):
                result["error"] = f"torch.compile check {problem}; the parts above were measured"
            return result
        return {
            "variant": asdict(compile_variant(backend)),
            "error": f"torch.compile check {problem or 'wrote nothing'}",
        }


def measure_ddp(
    config, dataset, scale, variant, world: int, use_cuda: bool, timeout: float
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as folder:
        port = free_port()
        args = [
            (rank, world, port, config, dataset, scale, variant, use_cuda, folder) for rank in range(world)
        ]
        problem = run_children(_ddp_child, args, timeout)
        ranks = [Path(folder, f"rank{rank}.json") for rank in range(world)]
        results = [json.loads(path.read_text()) for path in ranks if path.exists()]
    result: dict[str, Any] = {
        "world_size": world,
        "backend": "nccl" if use_cuda else "gloo",
        "variant": variant.name,
    }
    errors = [r["error"] for r in results if "error" in r]
    if problem or errors or len(results) < world:
        result["error"] = "; ".join(errors) or problem or "a rank wrote nothing"
        return result
    # Each iteration ends in DDP's gradient all-reduce, so the slowest rank sets the pace.
    result["median_seconds"] = max(r["median_seconds"] for r in results)
    result["per_rank_median_seconds"] = [r["median_seconds"] for r in results]
    result["peak_memory_mb_per_rank"] = [r["peak_memory_mb"] for r in results]
    result["global_batch"] = world * scale.batch
    return result


# --- projection ---------------------------------------------------------------------------------
def evaluation_langevin_steps(config: dict[str, Any]) -> dict[str, int]:
    """Langevin steps of one run's evaluation by ``evaluation.paper_protocol`` (docs/original-code.md section 8)."""
    protocol = config["evaluation"]["paper_protocol"]
    rounds = math.ceil(config["evaluation"]["num_samples"] / protocol["chains_per_round"])
    calls = rounds * protocol["calls_per_round"]
    return {
        "samples": config["evaluation"]["num_samples"],
        "rounds": rounds,
        "calls": calls,
        "steps_per_call": protocol["steps_per_call"],
        "batch": protocol["batch_size"],
        "langevin_steps": calls * protocol["steps_per_call"],
    }


def project(
    config: dict[str, Any],
    iteration_seconds: dict[str, float | None],
    eval_step_seconds: float | None,
    eval_step_batch: int,
    ddp_efficiency: float | None,
) -> dict[str, Any]:
    """GPU-hours of the Table 1 and Table 2 grids (``febm.runspec.image_runs``) from measured seconds.

    ``iteration_seconds``: one process at the configured batch, keys ``febm``, ``febm_two_sampler_runs``, ``cd``.
    ``eval_step_seconds``: one Langevin step at ``eval_step_batch``; scaled linearly to the protocol's batch
    when the two differ. ``ddp_efficiency``: single-GPU over multi-GPU seconds per iteration, measured;
    None = perfect scaling assumed for the 4 x 128 scenario."""
    from febm.runspec import image_runs

    evaluation = evaluation_langevin_steps(config)
    eval_seconds = None
    if eval_step_seconds is not None:
        eval_seconds = (
            evaluation["langevin_steps"] * eval_step_seconds * evaluation["batch"] / eval_step_batch
        )
    efficiency = ddp_efficiency or 1.0
    tables: dict[str, Any] = {}
    for table, dataset in TABLES.items():
        runs = image_runs(config, [dataset])
        iterations = config["images"][dataset]["training"]["iterations"]
        recipes: dict[str, Any] = {}
        for recipe in ("febm", "febm_two_sampler_runs"):
            per_method = {"febm": iteration_seconds.get(recipe), "cd": iteration_seconds.get("cd")}
            if None in per_method.values():
                recipes[recipe] = None
                continue
            one_gpu = sum(iterations * per_method[run.method] for run in runs) / 3600
            stop_at_released = (
                sum(
                    RELEASED_BEST_IS_ITERATIONS.get(run.divergence, iterations) * per_method[run.method]
                    if run.method == "febm"
                    else iterations * per_method[run.method]
                    for run in runs
                )
                / 3600
            )
            recipes[recipe] = {
                "training_gpu_hours_1_gpu_batch": one_gpu,
                "training_gpu_hours_4x_batch_ddp": ORIGINAL_PROCESSES * one_gpu / efficiency,
                "training_gpu_hours_1_gpu_stop_at_released_checkpoints": stop_at_released,
            }
        evaluation_hours = None if eval_seconds is None else len(runs) * eval_seconds / 3600
        for values in recipes.values():
            if values is not None and evaluation_hours is not None:
                values["total_gpu_hours_1_gpu_batch"] = (
                    values["training_gpu_hours_1_gpu_batch"] + evaluation_hours
                )
                values["total_gpu_hours_4x_batch_ddp"] = (
                    values["training_gpu_hours_4x_batch_ddp"] + evaluation_hours
                )
        tables[table] = {
            "dataset": dataset,
            "runs": len(runs),
            "runs_by_method": {m: sum(r.method == m for r in runs) for m in sorted({r.method for r in runs})},
            "iterations_per_run": iterations,
            "evaluation_gpu_hours": evaluation_hours,
            **recipes,
        }
    tables["evaluation_per_run"] = {**evaluation, "seconds": eval_seconds}
    tables["ddp_efficiency_used"] = efficiency if ddp_efficiency else "1.0 (assumed: not measured)"
    return tables


PROJECTION_ASSUMPTIONS = [
    "iterations per run = images.<dataset>.training.iterations of the config (80,000 by the schema default): the "
    "original's total is not stated (docs/original-code.md sections 6 and 10), and a run must reach at least its "
    "latest released best-IS checkpoint (79,300 squared Hellinger); '..._stop_at_released_checkpoints' is the lower "
    "bound of stopping each f-EBM run at its released checkpoint (45,900 JS, 79,300 squared Hellinger, 67,900 "
    "reverse KL, 74,800 KL; CD at the configured iterations)",
    "'1_gpu_batch': one process at the configured batch (what the pipeline runs with gpu=1); '4x_batch_ddp': the "
    "original's 4 processes x batch (global 512), 4 GPUs per run, time per iteration divided by the measured DDP "
    "efficiency (1.0 assumed when no multi-GPU run was measured)",
    "'febm': the config's recipe (second_sampler_run as configured); 'febm_two_sampler_runs': the released code's",
    "Table 2 (CelebA 32x32) uses the CIFAR-10 timing: the config gives it the same network, batch and sampler "
    "(unconditional: no class bias, a negligible difference)",
    "evaluation: evaluation.paper_protocol's calls x steps_per_call Langevin steps at its batch per run, from the "
    "measured step time at that batch; the Inception forward passes and the warm-up iterations are not included",
    "warm-up (L2-only) iterations are timed as full ones: they are 11 of 80,000",
]


# --- the check ----------------------------------------------------------------------------------
def no_cuda(out: Path | None, reason: str) -> int:
    record = {
        "cuda": False,
        "reason": reason,
        "torch_version": torch.__version__,
        "cuda_version": torch.version.cuda,
        "measured": False,
    }
    print(
        f"gpu_check: {reason}; nothing measured (exit 2). Run it on a CUDA machine, or "
        "`--device cpu --quick` for a smoke test of the code path.",
        file=sys.stderr,
    )
    emit(record, out)
    return 2


def emit(record: dict[str, Any], out: Path | None) -> None:
    text = json.dumps(record, indent=2, default=str)
    print(text)
    if out is not None:
        from febm.io import write_text_atomic

        write_text_atomic(out, text + "\n")


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--config", nargs="+", default=[str(DEFAULT_CONFIG)], help="YAML files, merged in order"
    )
    parser.add_argument("--dataset", default="cifar10", help="images.<dataset> section to benchmark")
    parser.add_argument("--device", choices=["auto", "cuda", "cpu"], default="auto")
    parser.add_argument(
        "--quick", action="store_true", help="width 8, batch 4, 2 steps: a seconds-long smoke test"
    )
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON here (atomically)")
    parser.add_argument("--budget-seconds", type=float, default=450.0, help="skip optional parts beyond this")
    parser.add_argument(
        "--compile-timeout", type=float, default=240.0, help="seconds for the torch.compile child"
    )
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile variant")
    parser.add_argument(
        "--compile-backend",
        default=None,
        help="torch.compile backend (default inductor; with --quick the compile variant runs only when this "
        "is given, e.g. 'eager' to exercise the code path without code generation)",
    )
    parser.add_argument(
        "--ddp-world", type=int, default=None, help="DDP processes (default: every visible GPU; on CPU: gloo)"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_arguments(argv)
    started = time.monotonic()
    deadline = started + args.budget_seconds
    if args.device != "cpu" and not torch.cuda.is_available():
        return no_cuda(
            args.out, f"no CUDA GPU visible (torch {torch.__version__}, built for CUDA {torch.version.cuda})"
        )
    if args.device == "cpu" and not args.quick:
        print(
            "gpu_check: --device cpu runs only with --quick (paper scale on a CPU takes hours)",
            file=sys.stderr,
        )
        return 2
    device = torch.device("cuda" if args.device != "cpu" else "cpu")
    if device.type == "cpu":
        torch.set_num_threads(1)  # a smoke test: spinning thread pools only slow a shared CPU down

    from febm.config import config_hash, load_config
    from febm.images.networks import build_energy_network, parameter_count
    from febm.images.training import ImageTrainer  # noqa: F401  (fail early if the trainer is broken)

    config = load_config(args.config)
    dataset = args.dataset
    section = config["images"][dataset]
    eval_batch = config["evaluation"]["paper_protocol"]["batch_size"]
    scale = QUICK_SCALE if args.quick else paper_scale(section, eval_batch)
    record: dict[str, Any] = {
        "cuda": device.type == "cuda",
        "measured": True,
        "scale": "quick: numbers exercise the code path only" if args.quick else "paper",
        "device": device_info(device),
        "config_hash": config_hash(config),
        "settings": {"dataset": dataset, **asdict(scale), "sampler": section["sampler"]},
    }
    log = lambda message: print(f"gpu_check: {message} ({time.monotonic() - started:.0f} s)", file=sys.stderr)  # noqa: E731

    log("matmul rates")
    record["matmul"] = matmul = measure_matmul(device, scale.matmul_n)
    torch.manual_seed(0)
    network = build_energy_network(
        train_settings(config, dataset, scale, EAGER_VARIANTS[0], "febm", False).network
    )
    network = network.to(device)
    record["parameter_count"] = parameter_count(network)
    flops = {
        "train_batch": langevin_step_flops(network, scale.batch, device),
        "eval_batch": langevin_step_flops(network, scale.eval_batch, device),
    }
    del network

    configured = next(
        v
        for v in EAGER_VARIANTS
        if (v.precision, v.channels_last)
        == (section["training"]["precision"], section["training"]["channels_last"])
    )
    variants: dict[str, Any] = {}
    for variant in EAGER_VARIANTS:
        log(f"variant {variant.name}")
        variants[variant.name] = measure_variant(
            config, dataset, scale, variant, device, flops, matmul, extra_recipes=variant == configured
        )
    fastest_eager = min(
        (v for v in EAGER_VARIANTS if "median_seconds" in variants[v.name]["febm"]),
        key=lambda v: variants[v.name]["febm"]["median_seconds"],
        default=None,
    )
    if fastest_eager is not None and fastest_eager != configured:
        log(f"CD and two sampler runs in {fastest_eager.name}")
        extra = measure_variant(
            config, dataset, scale, fastest_eager, device, flops, matmul, extra_recipes=True
        )
        variants[fastest_eager.name].update({k: extra[k] for k in ("febm_two_sampler_runs", "cd")})

    visible = torch.cuda.device_count() if device.type == "cuda" else 1
    world = args.ddp_world or visible
    if world < 2:
        record["ddp"] = {
            "skipped": f"{visible} GPU visible: DDP needs at least 2"
            if device.type == "cuda"
            else "CPU run: DDP only with --ddp-world N (gloo)"
        }
    elif device.type == "cuda" and world > visible:
        record["ddp"] = {"skipped": f"--ddp-world {world} but only {visible} GPUs visible"}
    elif fastest_eager is None:
        record["ddp"] = {"skipped": "no eager variant ran"}
    elif deadline - time.monotonic() < 90:
        record["ddp"] = {"skipped": f"time budget ({args.budget_seconds:.0f} s) nearly spent"}
    else:
        log(f"DDP across {world} processes")
        timeout = min(240.0, deadline - time.monotonic() - 30)
        record["ddp"] = ddp = measure_ddp(
            config, dataset, scale, fastest_eager, world, device.type == "cuda", timeout
        )
        if "median_seconds" in ddp:
            ddp["efficiency"] = variants[fastest_eager.name]["febm"]["median_seconds"] / ddp["median_seconds"]

    remaining = deadline - time.monotonic()
    backend = args.compile_backend or (None if args.quick else "inductor")
    if args.no_compile:
        variants[COMPILE_NAME] = {"skipped": "--no-compile"}
    elif backend is None:
        variants[COMPILE_NAME] = {
            "skipped": "--quick without --compile-backend (inductor on a CPU takes minutes)"
        }
    elif remaining < 45:
        variants[COMPILE_NAME] = {"skipped": f"time budget ({args.budget_seconds:.0f} s) nearly spent"}
    else:
        timeout = min(args.compile_timeout, remaining - 15)
        log(f"variant {COMPILE_NAME}, backend {backend} (child process, at most {timeout:.0f} s)")
        variants[COMPILE_NAME] = measure_compile(
            config, dataset, scale, backend, device, flops, matmul, timeout
        )
    record["iteration"] = variants
    record.update(summarise(config, variants, configured, scale, record.get("ddp", {})))
    record["wall_seconds"] = time.monotonic() - started
    log("done")
    emit(record, args.out)
    return 0


def summarise(
    config: dict[str, Any], variants: dict[str, Any], configured: Variant, scale: Scale, ddp: dict[str, Any]
) -> dict[str, Any]:
    """Headline numbers: per-variant iteration seconds and memory, the bf16 target, the projections."""
    seconds = {name: v.get("febm", {}).get("median_seconds") for name, v in variants.items()}
    summary: dict[str, Any] = {
        "iteration_median_seconds": seconds,
        "peak_memory_mb": {name: v.get("febm", {}).get("peak_memory_mb") for name, v in variants.items()},
        "compile_error": variants[COMPILE_NAME].get("error")
        or variants[COMPILE_NAME].get("febm", {}).get("error"),
    }
    bf16 = [
        (name, v["langevin_train_batch"]["fraction"].get("of_bf16_matmul"))
        for name, v in variants.items()
        if "langevin_train_batch" in v and v["variant"]["precision"] == "bf16"
    ]
    best = max(bf16, key=lambda item: item[1] or 0.0, default=(None, None))
    summary["langevin_bf16_fraction_of_bf16_matmul"] = {
        "best": best[1],
        "variant": best[0],
        "target": BF16_TARGET,
    }
    summary["langevin_bf16_target_met"] = None if best[1] is None else best[1] >= BF16_TARGET
    timed = {name: s for name, s in seconds.items() if s is not None}
    fastest = min(timed, key=timed.get) if timed else None
    ddp_efficiency = ddp.get("efficiency") if ddp.get("world_size") == ORIGINAL_PROCESSES else None
    projection: dict[str, Any] = {"assumptions": PROJECTION_ASSUMPTIONS}
    for label, name in (("as_configured", configured.name), ("fastest", fastest)):
        if name is None:
            continue
        entry = variants[name]
        # Recipes the fastest (possibly compiled) variant did not time take the fastest eager variant's ratio.
        iteration_seconds = {
            k: entry.get(k, {}).get("median_seconds") for k in ("febm", "febm_two_sampler_runs", "cd")
        }
        if iteration_seconds["febm"] is not None:
            for key in ("febm_two_sampler_runs", "cd"):
                if iteration_seconds[key] is None:
                    iteration_seconds[key] = _scaled_from_eager(
                        variants, key, iteration_seconds["febm"], entry["variant"]
                    )
        eval_source = entry if "langevin_eval_batch" in entry else _eager_twin(variants, entry)
        eval_step = (
            eval_source.get("langevin_eval_batch", {}).get("seconds_per_step") if eval_source else None
        )
        projection[label] = {
            "variant": name,
            "iteration_seconds": iteration_seconds,
            "evaluation_variant": eval_source["variant"]["name"] if eval_source else None,
            **project(config, iteration_seconds, eval_step, scale.eval_batch, ddp_efficiency),
        }
    summary["projection"] = projection
    # One line per table and variant for a closing note: f-EBM as configured, training + evaluation.
    summary["projected_gpu_hours"] = {
        f"{label}:{entry['variant']}": {
            table: {
                "1_gpu_batch": (entry[table].get("febm") or {}).get("total_gpu_hours_1_gpu_batch"),
                "4x_batch_ddp": (entry[table].get("febm") or {}).get("total_gpu_hours_4x_batch_ddp"),
            }
            for table in TABLES
        }
        for label, entry in projection.items()
        if label != "assumptions"
    }
    return summary


def _eager_twin(variants: dict[str, Any], entry: dict[str, Any]) -> dict[str, Any] | None:
    """The eager variant of the same precision and layout (for a compiled variant's evaluation step)."""
    for v in variants.values():
        spec = v.get("variant", {})
        if not spec.get("compile") and (spec.get("precision"), spec.get("channels_last")) == (
            entry["variant"]["precision"],
            entry["variant"]["channels_last"],
        ):
            return v if "langevin_eval_batch" in v else None
    return None


def _scaled_from_eager(
    variants: dict[str, Any], key: str, febm_seconds: float, like: dict[str, Any]
) -> float | None:
    """``key``'s seconds as the same multiple of f-EBM's as in an eager variant that timed both,
    preferring one of the same precision and layout as ``like``."""
    spec = (like["precision"], like["channels_last"])
    ordered = sorted(
        variants.values(),
        key=lambda v: (
            (v.get("variant", {}).get("precision"), v.get("variant", {}).get("channels_last")) != spec
        ),
    )
    for v in ordered:
        if key in v and "median_seconds" in v[key] and "median_seconds" in v.get("febm", {}):
            return febm_seconds * v[key]["median_seconds"] / v["febm"]["median_seconds"]
    return None


if __name__ == "__main__":
    sys.exit(main())
