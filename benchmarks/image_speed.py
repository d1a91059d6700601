"""Speed and memory of the image trainer; prints one JSON object.

Keys:
* ``iteration_cost_ratio``: seconds of one f-EBM iteration (Algorithm 1, one sampler run) divided by
  one iteration of the original recipe (``second_sampler_run``: a second sampler run for the E step),
  measured side by side in this process, alternating the two, fastest of each (target <= 0.55);
* ``langevin_fraction_of_matmul_peak``: FLOPs/s of Langevin steps (forward + input gradient of
  ResNet32, FLOPs counted by torch's FlopCounterMode) divided by this machine's measured float32
  matrix-multiply FLOPs/s (target >= 0.35 on CPU); on a GPU also the bf16 figure against bf16 matmul.
  The two are timed alternately and the best of each is kept (a shared machine's load varies);
* ``parameter_count``: the conditional ResNet32 at 128 filters (5,350,529 in the original);
* ``peak_rss_mb``: peak resident memory of this process; on a GPU also ``peak_gpu_memory_mb`` of one
  training iteration at the benchmarked scale.

Defaults: the paper scale on a GPU (width 128, batch 128, 60 steps). On a CPU the Langevin rate uses
width 128, batch 16, 10 steps (the rate does not depend on the number of steps) and the iteration
ratio width 32, batch 16, 60 steps (the ratio depends on the steps per iteration, hardly on the
width). Timing on a shared machine is noisy.

    python benchmarks/image_speed.py [--device cpu|cuda] [--width W] [--batch B] [--steps S]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import time

import torch

from febm.config import validate
from febm.images.data import ImageData
from febm.images.networks import NetworkConfig, build_energy_network, parameter_count
from febm.images.sampler import langevin
from febm.images.spectral import frozen_for_sampling
from febm.images.training import ImageTrainer, TrainSettings


def synchronise(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_rate(device: torch.device, dtype: torch.dtype, seconds: float) -> float:
    """Best rate of square matrix products (2 n^3 FLOPs each) within ``seconds``."""
    n = 4096 if device.type == "cuda" else 1024
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    a @ b
    best = 0.0
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        synchronise(device)
        start = time.perf_counter()
        for _ in range(10):
            a @ b
        synchronise(device)
        best = max(best, 10 * 2 * n**3 / (time.perf_counter() - start))
    return best


def langevin_step_flops(network: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """FLOPs of one Langevin step: forward plus the input gradient (counted, not estimated)."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    leaf = x.clone().requires_grad_(True)
    # The same computation as one sampler step; the input is a non-leaf because the counter's module
    # hooks cannot follow autograd.grad to a leaf.
    with frozen_for_sampling(network), counter:
        inputs = leaf * 1.0
        torch.autograd.grad(network(inputs, y).sum(), inputs)
    return float(counter.get_total_flops())


def langevin_fraction(
    network: torch.nn.Module,
    batch: int,
    steps: int,
    device: torch.device,
    precision: str,
    channels_last: bool,
    repeats: int,
) -> dict[str, float]:
    """Langevin FLOPs/s over matmul FLOPs/s of the same dtype, alternating the two ``repeats`` times and
    keeping the best of each, so both get the same chance of a quiet moment on a shared machine."""
    generator = torch.Generator(device).manual_seed(0)
    x = torch.rand(batch, 3, 32, 32, device=device, generator=generator)
    y = torch.arange(batch, device=device) % 10
    flops = langevin_step_flops(network, x, y)
    options = {"precision": precision, "channels_last": channels_last, "generator": generator}
    langevin(network, x, y, steps=1, step_size=10.0, noise_std=0.005, grad_clip=0.01, **options)
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    best_step, best_matmul = float("inf"), 0.0
    for _ in range(repeats):
        synchronise(device)
        start = time.perf_counter()
        langevin(network, x, y, steps=steps, step_size=10.0, noise_std=0.005, grad_clip=0.01, **options)
        synchronise(device)
        seconds = (time.perf_counter() - start) / steps
        best_step = min(best_step, seconds)
        best_matmul = max(best_matmul, matmul_rate(device, dtype, seconds=min(2.0, seconds * steps)))
    rate = flops / best_step
    return {
        "flops_per_step": flops,
        "seconds_per_step": best_step,
        "flops_per_second": rate,
        "matmul_flops_per_second": best_matmul,
        "fraction_of_matmul": rate / best_matmul,
    }


def iteration_ratio(
    width: int, batch: int, steps: int, device: torch.device, precision: str, channels_last: bool, rounds: int
) -> dict[str, float]:
    """Seconds per iteration with one and with two sampler runs, alternating the two."""
    images = torch.randint(0, 256, (max(4 * batch, 64), 3, 32, 32), dtype=torch.uint8, device=device)
    data = ImageData(images, torch.randint(0, 10, (images.shape[0],), device=device), 10, True, "random")
    trainers = {}
    for second_run in (False, True):
        section = validate(
            {
                "images": {
                    "cifar10": {
                        "network": {"num_filters": width},
                        "training": {
                            "batch_size": batch,
                            "warmup_iterations": 0,
                            "second_sampler_run": second_run,
                            "precision": precision,
                            "channels_last": channels_last,
                        },
                        "sampler": {"steps": steps},
                    }
                }
            }
        )["images"]["cifar10"]
        settings = TrainSettings.from_config(section, method="febm", divergence="jensen_shannon", seed=0)
        trainers[second_run] = ImageTrainer(settings, data, device)
    seconds: dict[bool, list[float]] = {False: [], True: []}
    peak_memory = 0.0
    for round_index in range(rounds + 1):
        for second_run, trainer in trainers.items():
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            synchronise(device)
            start = time.perf_counter()
            trainer.step()
            synchronise(device)
            if round_index > 0:  # the first round warms up allocators and kernels
                seconds[second_run].append(time.perf_counter() - start)
            if device.type == "cuda" and not second_run:
                peak_memory = max(peak_memory, torch.cuda.max_memory_allocated(device) / 2**20)
    # Fastest of each: on a shared machine the load only ever adds time.
    one, two = min(seconds[False]), min(seconds[True])
    result = {
        "seconds_one_sampler_run": one,
        "seconds_two_sampler_runs": two,
        "ratio": one / two,
        "ratio_of_medians": statistics.median(seconds[False]) / statistics.median(seconds[True]),
    }
    if device.type == "cuda":
        result["peak_gpu_memory_mb"] = peak_memory
    return result


def paper_iteration_memory(device: torch.device) -> dict[str, float]:
    """Peak memory of one f-EBM iteration at paper scale (width 128, batch 128) with one Langevin step:
    the sampler frees its graph every step, so 60 steps need no more memory than one."""
    import gc

    gc.collect()
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    images = torch.randint(0, 256, (256, 3, 32, 32), dtype=torch.uint8, device=device)
    data = ImageData(images, torch.randint(0, 10, (256,), device=device), 10, True, "random")
    section = validate(
        {"images": {"cifar10": {"training": {"warmup_iterations": 0}, "sampler": {"steps": 1}}}}
    )
    settings = TrainSettings.from_config(section["images"]["cifar10"], method="febm", divergence="kl", seed=0)
    trainer = ImageTrainer(settings, data, device)
    trainer.step()
    result = {
        "peak_rss_mb_before": rss_before,
        "peak_rss_mb_after": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    if device.type == "cuda":
        result["peak_gpu_memory_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--batch", type=int, default=None, help="default: 128 on GPU, 16 on CPU")
    parser.add_argument("--steps", type=int, default=None, help="default: 60 on GPU, 10 on CPU")
    parser.add_argument("--rounds", type=int, default=3, help="timed iterations per recipe")
    parser.add_argument("--repeats", type=int, default=5, help="alternations of Langevin and matmul timing")
    parser.add_argument(
        "--ratio-width",
        type=int,
        default=None,
        help="width for the iteration ratio (default: --width on GPU, 32 on CPU)",
    )
    parser.add_argument(
        "--ratio-steps", type=int, default=60, help="Langevin steps for the iteration ratio (60 = the paper)"
    )
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument(
        "--paper-memory-probe",
        action="store_true",
        help="also run one paper-scale iteration (width 128, batch 128, 1 Langevin step) and report its peak memory",
    )
    args = parser.parse_args(argv)
    use_cuda = args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
    device = torch.device("cuda" if use_cuda else "cpu")
    batch = args.batch or (128 if use_cuda else 16)
    steps = args.steps or (60 if use_cuda else 10)

    torch.manual_seed(0)
    network = build_energy_network(NetworkConfig(args.width, 10)).to(device)
    if args.channels_last:
        network = network.to(memory_format=torch.channels_last)
    print("measuring Langevin steps against matmul ...", file=sys.stderr)
    rate32 = langevin_fraction(network, batch, steps, device, "float32", args.channels_last, args.repeats)
    print(f"float32: {rate32}", file=sys.stderr)
    result = {
        "device": torch.cuda.get_device_name(device)
        if use_cuda
        else f"cpu ({torch.get_num_threads()} threads)",
        "settings": {
            "width": args.width,
            "batch": batch,
            "steps": steps,
            "channels_last": args.channels_last,
        },
        "parameter_count": parameter_count(build_energy_network(NetworkConfig(128, 10))),
        "parameter_count_benchmarked_width": parameter_count(network),
        "langevin_float32": rate32,
        "langevin_fraction_of_matmul_peak": rate32["fraction_of_matmul"],
    }
    if use_cuda:
        rate16 = langevin_fraction(network, batch, steps, device, "bf16", args.channels_last, args.repeats)
        result["langevin_bf16"] = rate16
        result["langevin_bf16_fraction_of_bf16_matmul_peak"] = rate16["fraction_of_matmul"]
    print("measuring training iterations (one vs two sampler runs) ...", file=sys.stderr)
    ratio_width = args.ratio_width or (args.width if use_cuda else 32)
    ratio = iteration_ratio(
        ratio_width, batch, args.ratio_steps, device, "float32", args.channels_last, args.rounds
    )
    ratio["settings"] = {"width": ratio_width, "batch": batch, "steps": args.ratio_steps}
    result["iteration"] = ratio
    result["iteration_cost_ratio"] = ratio["ratio"]
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if args.paper_memory_probe:
        print("one paper-scale iteration for its memory ...", file=sys.stderr)
        result["paper_iteration_memory"] = paper_iteration_memory(device)
    result["note"] = "timings are wall-clock on this machine; on a shared CPU they are noisy"
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
