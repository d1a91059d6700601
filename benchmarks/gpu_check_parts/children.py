"""The GPU check's isolated children: the torch.compile variant (a spawned process with a time limit, so an error
or a hang is recorded, not raised) and the DDP run across processes (nccl on GPUs, gloo on CPU)."""

from __future__ import annotations

import json
import multiprocessing
import os
import socket
import tempfile
import time
import traceback
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from gpu_check_parts.common import compile_variant, one_line, random_data, train_settings
from gpu_check_parts.measure import measure_variant, time_iterations


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
