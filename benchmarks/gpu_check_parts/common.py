"""What the GPU check's parts share: its targets and constants, the benchmarked scales and variants, small CUDA
helpers (synchronise, peak memory, device info) and the trainer built as the pipeline builds it (random data of
the CIFAR-10 shape, ``TrainSettings.from_config`` with only the benchmarked knobs changed)."""

from __future__ import annotations

import copy
import sys
from dataclasses import dataclass
from typing import Any

import torch

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
