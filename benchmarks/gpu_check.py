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
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = REPO / "config" / "config.yaml"
# The parts live in benchmarks/gpu_check_parts/; this folder is not a package, so put it on the path (it is
# already there when run as a script, not when the file is loaded by path, as the tests do).
sys.path.insert(0, str(Path(__file__).resolve().parent))

from gpu_check_parts.children import (  # noqa: E402
    measure_compile,
    measure_ddp,
)
from gpu_check_parts.common import (  # noqa: E402
    COMPILE_NAME,
    EAGER_VARIANTS,
    QUICK_SCALE,
    device_info,
    paper_scale,
    train_settings,
)
from gpu_check_parts.measure import (  # noqa: E402
    langevin_step_flops,
    measure_matmul,
    measure_variant,
)
from gpu_check_parts.projection import (  # noqa: E402
    summarise,
)


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


if __name__ == "__main__":
    sys.exit(main())
