"""Langevin sampler and replay buffer."""

from __future__ import annotations

import pytest
import torch

from febm.images.networks import NetworkConfig, build_energy_network
from febm.images.replay import ReplayBuffer
from febm.images.sampler import langevin, quantise_to_uint8
from febm.images.spectral import spectral_layers
from febm.langevin import langevin_dynamics

pytestmark = pytest.mark.usefixtures("single_torch_thread")


def _network():
    torch.manual_seed(0)
    return build_energy_network(NetworkConfig(num_filters=8, num_classes=10))


def test_langevin_lowers_the_energy_and_stays_in_range():
    network = _network()
    generator = torch.Generator().manual_seed(0)
    x, y = torch.rand(6, 3, 32, 32, generator=generator), torch.arange(6)
    before = network(x, y).detach()
    samples = langevin(
        network, x, y, steps=10, step_size=10.0, noise_std=0.005, grad_clip=0.01, generator=generator
    )
    after = network(samples, y).detach()
    assert samples.shape == x.shape and not samples.requires_grad
    assert samples.min() >= 0 and samples.max() <= 1
    assert (after < before).all()
    # Each step moves a pixel by at most step_size * grad_clip plus the noise.
    assert (samples - x).abs().max() <= 10 * (0.1 + 5 * 0.005)


def test_sampler_forms_no_weight_gradients_and_restores_the_network():
    network = _network()
    u_before = [layer.u.clone() for layer in spectral_layers(network)]
    langevin(
        network,
        torch.rand(4, 3, 32, 32),
        torch.arange(4),
        steps=3,
        step_size=10.0,
        noise_std=0.005,
        grad_clip=0.01,
    )
    assert all(parameter.grad is None for parameter in network.parameters())
    assert all(parameter.requires_grad for parameter in network.parameters())
    assert all(layer._frozen_weight is None for layer in spectral_layers(network))
    # u advances once per training step (the trainer's job), never inside the sampler.
    assert all(torch.equal(a, layer.u) for a, layer in zip(u_before, spectral_layers(network), strict=True))


def test_element_wise_gradient_clip_and_noise_first():
    class Linear(torch.nn.Module):
        """E(x) = sum(w * x): the gradient is w everywhere, so each step moves exactly -step * clip(w)."""

        def __init__(self) -> None:
            super().__init__()
            self.weight = torch.nn.Parameter(
                torch.tensor([1.0, -0.001]).repeat(3 * 32 * 16).reshape(3, 32, 32)
            )

        def forward(self, x, y):
            return (x * self.weight).sum(dim=(1, 2, 3))

    x = torch.full((2, 3, 32, 32), 0.5)
    out = langevin(Linear(), x, None, steps=1, step_size=10.0, noise_std=0.0, grad_clip=0.01)
    moved = (out - x).reshape(2, -1)
    assert torch.allclose(moved[:, 0::2], torch.full_like(moved[:, 0::2], -0.1))  # clipped to 0.01
    assert torch.allclose(moved[:, 1::2], torch.full_like(moved[:, 1::2], 0.01))  # not clipped


def test_image_sampler_is_the_shared_langevin_with_the_image_variant():
    """The wrapper only adds the frozen network, autocast and layout: its steps are febm.langevin's."""
    network = _network()
    x, y = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(2)), torch.tensor([3, 7])
    kwargs = {"steps": 2, "step_size": 10.0, "noise_std": 0.005, "grad_clip": 0.01}
    got = langevin(network, x, y, generator=torch.Generator().manual_seed(9), **kwargs)

    def gradient(point):
        leaf = point.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(network(leaf, y).sum(), leaf)
        return grad

    expected = langevin_dynamics(
        x, gradient, noise_first=True, clamp=(0.0, 1.0), generator=torch.Generator().manual_seed(9), **kwargs
    )
    assert torch.equal(got, expected.detach())


def test_quantisation_is_floor_256_nhwc():
    x = torch.tensor([0.0, 0.5, 0.99999, 1.0]).reshape(1, 1, 2, 2).expand(1, 3, 2, 2)
    pixels = quantise_to_uint8(x)
    assert pixels.shape == (1, 2, 2, 3) and pixels.dtype == torch.uint8
    assert pixels[0, :, :, 0].flatten().tolist() == [0, 128, 255, 255]


def test_replay_buffer_keeps_labels_reinitialises_and_round_trips():
    generator = torch.Generator().manual_seed(0)
    buffer = ReplayBuffer(50, (3, 4, 4), storage="uint8")
    batch_labels = torch.full((20,), 9)
    starts, labels = buffer.chain_starts(batch_labels, 20, reinit_prob=0.05, generator=generator)
    assert torch.equal(labels, batch_labels)  # empty buffer: all fresh noise under the batch labels

    stored = torch.rand(30, 3, 4, 4, generator=generator)
    buffer.push(stored, torch.arange(30) % 3)
    assert len(buffer) == 30
    draws = [
        buffer.chain_starts(torch.full((20,), 9), 20, reinit_prob=0.05, generator=generator)
        for _ in range(100)
    ]
    starts, labels = torch.cat([start for start, _ in draws]), torch.cat([label for _, label in draws])
    fresh = labels == 9
    assert 0.02 < fresh.float().mean() < 0.08  # ~5% fresh starts
    # Replayed starts are stored images (uint8 round trip within one level) with their own labels.
    distance = (starts[~fresh][:, None] - stored[None]).abs().amax(dim=(2, 3, 4))
    nearest = distance.argmin(dim=1)
    assert (distance.min(dim=1).values <= 1 / 256 + 1e-6).all()
    assert torch.equal(labels[~fresh], nearest % 3)

    buffer.push(torch.rand(40, 3, 4, 4), torch.zeros(40, dtype=torch.long))  # wraps around
    assert len(buffer) == 50 and buffer.next_slot == 20
    copy = ReplayBuffer(50, (3, 4, 4), storage="uint8")
    copy.load_state_dict(buffer.state_dict())
    assert torch.equal(copy.images, buffer.images) and copy.next_slot == buffer.next_slot
