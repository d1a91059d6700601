"""The settings of one image training run (``images.<dataset>`` of the config, plus the run's identity)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from febm.images.networks import NetworkConfig
from febm.images.sampler import LangevinSettings


@dataclass(frozen=True)
class TrainSettings:
    method: str
    divergence: str
    seed: int
    network: NetworkConfig
    sampler: LangevinSettings
    iterations: int
    batch_size: int
    lr: float
    betas: tuple[float, float]
    eps: float
    grad_clip_std: float
    grad_clip_floor: float
    l2_coeff: float
    warmup_iterations: int
    exp_clamp: float | None
    second_sampler_run: bool
    precision: str
    channels_last: bool
    energy_limit: float
    replay_capacity: int
    replay_reinit_prob: float
    replay_storage: str
    replay_relabel: bool
    replay_original_quantisation: bool
    # training.parallel: K processes of the global batch, and how they run. With one_process the
    # batch and the buffer above already hold K processes' worth (K x batch_size, K x capacity).
    processes: int = 1
    launch: str = "one_process"

    @classmethod
    def from_config(
        cls, section: dict[str, Any], *, method: str, divergence: str, seed: int, image_channels: int = 3
    ) -> TrainSettings:
        """``section`` is ``config['images'][dataset]`` (validated, defaults filled); ``image_channels``
        comes from the data (3 for CIFAR-10 and CelebA, 1 for Fashion-MNIST)."""
        training, replay = section["training"], section["replay"]
        parallel = training["parallel"]
        in_this_process = parallel["processes"] if parallel["launch"] == "one_process" else 1
        return cls(
            method=method,
            divergence=divergence,
            seed=seed,
            network=NetworkConfig(
                num_filters=section["network"]["num_filters"],
                num_classes=10 if section["conditional"] else 0,
                image_channels=image_channels,
            ),
            sampler=LangevinSettings.from_config(section["sampler"]),
            iterations=training["iterations"],
            batch_size=training["batch_size"] * in_this_process,
            lr=training["lr"],
            betas=(training["beta1"], training["beta2"]),
            eps=training["eps"],
            grad_clip_std=training["grad_clip_std"],
            grad_clip_floor=training["grad_clip_floor"],
            l2_coeff=training["l2_coeff"],
            warmup_iterations=training["warmup_iterations"],
            exp_clamp=training["exp_clamp"],
            second_sampler_run=training["second_sampler_run"],
            precision=training["precision"],
            channels_last=training["channels_last"],
            energy_limit=training["energy_limit"],
            replay_capacity=replay["capacity"] * in_this_process,
            replay_reinit_prob=replay["reinit_prob"],
            replay_storage=replay["storage"],
            replay_relabel=replay["relabel"],
            replay_original_quantisation=replay["original_quantisation"],
            processes=parallel["processes"],
            launch=parallel["launch"],
        )
