"""The paper's evaluation sampling schedule on tiny hand-made energies (no trained network)."""

import numpy as np
import pytest
import torch
from torch import nn

from febm.evaluation.protocol import (
    paper_protocol,
    plain_protocol,
    sample_paper_protocol,
    write_back,
)

CLASSES = 3


class ClassTargetEnergy(nn.Module):
    """E(x, y) = |x - t_y|^2 with a grey level t_y per class (or 0.5 without labels): minimum is known."""

    def __init__(self, conditional: bool = True) -> None:
        super().__init__()
        self.conditional = conditional
        self.targets = nn.Parameter(torch.tensor([0.15, 0.5, 0.85]))
        self.calls = 0
        self.batch_sizes: list[int] = []

    def forward(self, x: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        assert (y is not None) == self.conditional
        self.calls += 1
        self.batch_sizes.append(x.shape[0])
        target = self.targets[y].view(-1, 1, 1, 1) if y is not None else 0.5
        return ((x - target) ** 2).flatten(1).sum(1)


# Step 1.0 with clip 0.05 moves a pixel by at most 0.05 per step; near the target it oscillates
# within +-0.025 (gradient 2(x - t) times step 1 reflects it), so converged chains are recognisable.
SMALL = {
    "chains_per_round": 10,
    "batch_size": 6,
    "calls_per_round": 40,
    "nomix_calls": 20,
    "steps_per_call": 2,
    "step_size": 1.0,
    "noise_std": 0.0,
    "grad_clip": 0.05,
    "reinit_image_prob": 0.0,
    "reinit_label_prob": 0.0,
}


def generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def pixel_means(images: np.ndarray) -> np.ndarray:
    return (images.reshape(len(images), -1).astype(np.float64) + 0.5).mean(1) / 256


def test_shape_dtype_count_and_labels_follow_the_energy():
    energy = ClassTargetEnergy()
    samples = sample_paper_protocol(energy, 25, CLASSES, SMALL, generator(), "cpu", progress=False)
    assert samples.images.shape == (25, 32, 32, 3) and samples.images.dtype == np.uint8
    assert samples.labels.shape == (25,)
    # Every chain converged to the grey level of the label it is returned with.
    targets = energy.targets.detach().numpy()[samples.labels]
    np.testing.assert_allclose(pixel_means(samples.images), targets, atol=0.03)
    assert samples.record["protocol"] == "paper" and samples.record["rounds"] == 3


def test_buffer_fills_by_appending_whole_batches_then_runs_every_call():
    # 10 chains with batches of 6: two filling calls append 12 slots (the original's 1,000 -> 1,024).
    energy = ClassTargetEnergy()
    sample_paper_protocol(energy, 10, CLASSES, SMALL, generator(), "cpu", progress=False)
    # one energy evaluation per Langevin step: calls x steps, every call a full batch
    assert energy.calls == SMALL["calls_per_round"] * SMALL["steps_per_call"]
    assert set(energy.batch_sizes) == {SMALL["batch_size"]}


def test_same_seed_same_images_other_seed_other_images():
    first = paper_protocol(
        ClassTargetEnergy(), 10, CLASSES, {**SMALL, "noise_std": 0.005}, generator(1), "cpu"
    )
    again = paper_protocol(
        ClassTargetEnergy(), 10, CLASSES, {**SMALL, "noise_std": 0.005}, generator(1), "cpu"
    )
    other = paper_protocol(
        ClassTargetEnergy(), 10, CLASSES, {**SMALL, "noise_std": 0.005}, generator(2), "cpu"
    )
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


def test_final_no_mix_phase_lets_restarted_chains_converge():
    # Every drawn chain restarts from noise while mixing. With a long no-mix phase every slot converges;
    # without one, the slots drawn in the last call are 2 steps from noise (max move 0.1).
    restarting = {**SMALL, "reinit_image_prob": 1.0, "calls_per_round": 60, "steps_per_call": 2}
    with_nomix = paper_protocol(
        ClassTargetEnergy(False), 10, None, {**restarting, "nomix_calls": 58}, generator(), "cpu"
    )
    without_nomix = paper_protocol(
        ClassTargetEnergy(False), 10, None, {**restarting, "nomix_calls": 0}, generator(), "cpu"
    )
    assert np.all(np.abs(pixel_means(with_nomix) - 0.5) < 0.03)
    per_pixel_far = np.abs((without_nomix.astype(np.float64) + 0.5) / 256 - 0.5) > 0.2
    assert per_pixel_far.mean() > 0.05


def test_label_reinitialisation_stops_in_the_no_mix_phase():
    # Labels redrawn at every mixing call; in the no-mix phase labels stay, and images follow them.
    settings = {**SMALL, "reinit_label_prob": 1.0, "calls_per_round": 70, "nomix_calls": 50}
    energy = ClassTargetEnergy()
    samples = sample_paper_protocol(energy, 10, CLASSES, settings, generator(3), "cpu", progress=False)
    targets = energy.targets.detach().numpy()[samples.labels]
    np.testing.assert_allclose(pixel_means(samples.images), targets, atol=0.03)


def test_write_back_keeps_the_last_write_of_a_slot_drawn_twice():
    buffer = torch.zeros(5)
    write_back(buffer, torch.tensor([1, 3, 1, 1, 4]), torch.tensor([10.0, 20.0, 30.0, 40.0, 50.0]))
    assert buffer.tolist() == [0.0, 40.0, 0.0, 20.0, 50.0]


def test_plain_protocol_runs_fresh_chains_for_unconditional_energies():
    settings = {"batch_size": 4, "steps": 30, "step_size": 1.0, "noise_std": 0.0, "grad_clip": 0.05}
    images = plain_protocol(ClassTargetEnergy(False), 6, None, settings, generator(), "cpu")
    assert images.shape == (6, 32, 32, 3)
    np.testing.assert_allclose(pixel_means(images), 0.5, atol=0.03)


def test_bad_settings_are_rejected():
    with pytest.raises(ValueError, match="unknown"):
        paper_protocol(ClassTargetEnergy(), 4, CLASSES, {**SMALL, "typo": 1}, generator(), "cpu")
    with pytest.raises(ValueError, match="nomix_calls"):
        paper_protocol(ClassTargetEnergy(), 4, CLASSES, {**SMALL, "nomix_calls": 99}, generator(), "cpu")
