"""One-channel (Fashion-MNIST) images through the evaluation path: the sampling protocols draw one-channel
images from one-channel networks, grids are written greyscale, and the sampling-process figure follows
the network's channels."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from febm.config import validate
from febm.evaluation import figures
from febm.evaluation.protocol import image_shape_of, sample_with_protocol
from febm.images.grid import save_grid
from febm.images.networks import NetworkConfig, build_energy_network

TINY_PAPER = {
    "chains_per_round": 6,
    "batch_size": 4,
    "calls_per_round": 3,
    "nomix_calls": 1,
    "steps_per_call": 1,
}
TINY_PLAIN = {"batch_size": 4, "steps": 2}


def _tiny_evaluation(**classifier: int) -> dict:
    return {
        "paper_protocol": TINY_PAPER,
        "plain_protocol": TINY_PLAIN,
        "device": "cpu",
        "classifier": classifier,
    }


@pytest.mark.parametrize("protocol", ["paper", "plain"])
def test_one_channel_networks_sample_one_channel_images(protocol, single_torch_thread):
    energy = build_energy_network(NetworkConfig(num_filters=4, num_classes=10, image_channels=1))
    assert image_shape_of(energy) == (1, 32, 32)
    wrapped = torch.nn.Module()
    wrapped.module = energy  # as DistributedDataParallel holds it
    assert image_shape_of(wrapped) == (1, 32, 32)
    evaluation = validate({"evaluation": _tiny_evaluation()})["evaluation"]
    generator = torch.Generator().manual_seed(0)
    samples = sample_with_protocol(protocol, energy, 7, 10, evaluation, generator, "cpu", progress=False)
    assert samples.images.shape == (7, 32, 32, 1) and samples.images.dtype == np.uint8
    assert samples.labels.shape == (7,) and 0 <= samples.labels.min() and samples.labels.max() < 10
    rgb = build_energy_network(NetworkConfig(num_filters=4))
    assert image_shape_of(rgb) == (3, 32, 32) and image_shape_of(torch.nn.Identity()) == (3, 32, 32)


def test_grids_write_greyscale_for_one_channel_and_rgb_for_three(tmp_path):
    grey = tmp_path / "grey.png"
    save_grid(torch.rand(5, 1, 32, 32), grey)
    colour = tmp_path / "colour.png"
    save_grid(torch.rand(5, 3, 32, 32), colour)
    with Image.open(grey) as image:
        assert image.mode == "L" and image.size == (3 * 34 + 2, 2 * 34 + 2)
    with Image.open(colour) as image:
        assert image.mode == "RGB" and image.size == (3 * 34 + 2, 2 * 34 + 2)

    images = np.random.default_rng(0).integers(0, 256, size=(12, 32, 32, 1), dtype=np.uint8)
    tiles = figures.uncurated_tiles(images, np.arange(12) % 3, rows=3, cols=4)
    canvas = figures.tile_grid(tiles)
    assert canvas.shape == (3 * 34 + 2, 4 * 34 + 2, 1)
    assert np.array_equal(canvas[2:34, 2:34, 0], images[0, :, :, 0])
    figures.write_png(tmp_path / "tiles.png", canvas, scale=1)
    with Image.open(tmp_path / "tiles.png") as image:
        assert image.mode == "L" and np.array_equal(np.asarray(image), canvas[:, :, 0])


def test_sampling_process_figure_follows_the_network_channels(single_torch_thread):
    energy = build_energy_network(NetworkConfig(num_filters=4, image_channels=1))
    sampler = {"step_size": 10.0, "noise_std": 0.005, "grad_clip": 0.05}
    frames = figures.sampling_process(energy, 2, None, 2, 3, sampler, torch.Generator().manual_seed(0), "cpu")
    assert frames.shape == (2, 3, 32, 32, 1)
