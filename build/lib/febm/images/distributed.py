"""Process-group set-up for multi-GPU runs launched with ``torchrun``; a no-op for one process.

``torchrun --nproc_per_node=4 -m febm train-images ...`` sets WORLD_SIZE/RANK/LOCAL_RANK; each process
then drives one GPU with its own batch, replay buffer and seed offset, and DDP averages gradients, as
the original's Horovod set-up (4 processes x 128, docs/original-code.md §6).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from febm.errors import FebmError


class DeviceError(FebmError):
    """The requested device is not available, or a paper-scale run would start on a CPU."""


@dataclass(frozen=True)
class ProcessContext:
    rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def resolve_device(requested: str, local_rank: int) -> torch.device:
    if requested == "cpu":
        return torch.device("cpu")
    if torch.cuda.is_available():
        return torch.device("cuda", local_rank % torch.cuda.device_count())
    if requested == "cuda":
        raise DeviceError("images.device is 'cuda' but no CUDA GPU is visible; use device: auto or cpu")
    return torch.device("cpu")


def start_processes(requested_device: str) -> ProcessContext:
    """Join the torchrun process group when WORLD_SIZE > 1; pick this process's device."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(requested_device, local_rank)
    if world_size > 1:
        import torch.distributed as dist

        if device.type == "cuda":
            torch.cuda.set_device(device)
        if not dist.is_initialized():
            dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return ProcessContext(rank=rank, world_size=world_size, device=device)


def stop_processes(context: ProcessContext) -> None:
    if context.distributed:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()


def barrier(context: ProcessContext) -> None:
    if context.distributed:
        import torch.distributed as dist

        dist.barrier()


def agree_on_minimum(context: ProcessContext, value: int) -> int:
    """The smallest ``value`` over all ranks (used to resume every rank from the same iteration)."""
    if not context.distributed:
        return value
    import torch.distributed as dist

    tensor = torch.tensor([value], dtype=torch.long, device=context.device)
    dist.all_reduce(tensor, op=dist.ReduceOp.MIN)
    return int(tensor.item())
