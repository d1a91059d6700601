"""The `replay` evaluation protocol: a run's final replay buffer, continued under the final network."""

import numpy as np
import pytest
import torch
from torch import nn

from febm.evaluation.protocol import sample_with_protocol
from febm.images.replay import ReplayChains, ReplayFileError, load_replay_chains, save_replay_chains


class ClassTargetEnergy(nn.Module):
    """E(x, y) = |x - t_y|^2 with one grey level t_y per class: chains move towards a known target."""

    def __init__(self) -> None:
        super().__init__()
        self.targets = nn.Parameter(torch.tensor([0.1, 0.9]))

    def forward(self, x: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        return ((x - self.targets[y].view(-1, 1, 1, 1)) ** 2).flatten(1).sum(1)


def evaluation(steps: int) -> dict:
    settings = {"batch_size": 3, "steps": steps, "step_size": 1.0, "noise_std": 0.0, "grad_clip": 0.05}
    return {"replay_protocol": settings}


def buffer_file(tmp_path, count: int = 8, channels: int = 3) -> ReplayChains:
    """Mid-grey chains with alternating labels, saved as train-images writes them."""
    images = torch.full((count, channels, 32, 32), 128, dtype=torch.uint8)
    images += torch.arange(count, dtype=torch.uint8).view(-1, 1, 1, 1)  # each chain recognisable
    labels = torch.arange(count) % 2
    save_replay_chains(tmp_path / "replay.npz", images, labels, iteration=42)
    return load_replay_chains(tmp_path / "replay.npz")


def sample(chains: ReplayChains, n: int, steps: int, seed: int = 0):
    return sample_with_protocol(
        "replay",
        ClassTargetEnergy(),
        n,
        2,
        evaluation(steps),
        torch.Generator().manual_seed(seed),
        "cpu",
        replay_chains=chains,
        progress=False,
    )


def test_zero_steps_returns_distinct_buffer_chains_with_their_own_labels(tmp_path):
    chains = buffer_file(tmp_path)
    samples = sample(chains, 5, steps=0)
    assert samples.images.shape == (5, 32, 32, 3) and samples.images.dtype == np.uint8
    offsets = samples.images[:, 0, 0, 0].astype(int) - 128  # which buffer chain each sample is
    assert len(set(offsets)) == 5  # drawn without replacement
    np.testing.assert_array_equal(samples.images, chains.images[offsets])
    np.testing.assert_array_equal(samples.labels, chains.labels[offsets])
    assert samples.record["protocol"] == "replay" and samples.record["buffer_iteration"] == 42


def test_steps_move_each_chain_towards_its_own_class(tmp_path):
    samples = sample(buffer_file(tmp_path), 8, steps=20)
    means = samples.images.reshape(8, -1).mean(1) / 256
    # 20 clipped steps of 0.05 reach both targets (0.1 and 0.9) from ~0.5.
    assert np.all(np.abs(means - np.where(samples.labels == 1, 0.9, 0.1)) < 0.03)


def test_same_seed_same_samples_other_seed_other_draw(tmp_path):
    chains = buffer_file(tmp_path)
    np.testing.assert_array_equal(sample(chains, 4, 0, seed=1).images, sample(chains, 4, 0, seed=1).images)
    draws = {tuple(sample(chains, 4, 0, seed=seed).images[:, 0, 0, 0]) for seed in range(5)}
    assert len(draws) > 1


def test_bad_replay_input_is_one_clear_error(tmp_path):
    chains = buffer_file(tmp_path)
    with pytest.raises(ReplayFileError, match="holds 8 chains, 9 samples"):
        sample(chains, 9, steps=0)
    with pytest.raises(ReplayFileError, match="does not exist"):
        load_replay_chains(tmp_path / "missing.npz")
    damaged = tmp_path / "damaged.npz"
    damaged.write_bytes((tmp_path / "replay.npz").read_bytes()[:200])
    with pytest.raises(ReplayFileError, match="cannot be read"):
        load_replay_chains(damaged)
    grey = buffer_file(tmp_path, channels=1)
    with pytest.raises(ReplayFileError, match="1-channel images, the network takes 3"):
        sample(grey, 2, steps=0)
