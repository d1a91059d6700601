"""ResNet32 energy network: size, conditioning, spectral norms, precision options."""

from __future__ import annotations

import pytest
import torch

from febm.images.networks import NetworkConfig, ResNet32Energy, build_energy_network, parameter_count
from febm.images.spectral import SpectralConv2d, power_iteration_, spectral_layers

pytestmark = pytest.mark.usefixtures("single_torch_thread")


def _tiny(num_classes: int = 10, seed: int = 0) -> ResNet32Energy:
    torch.manual_seed(seed)
    return build_energy_network(NetworkConfig(num_filters=8, num_classes=num_classes))


def _roughen(network: ResNet32Energy) -> None:
    """Give conv2 and the class parameters non-trivial values (at init they are ~0 / identity)."""
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, parameter in network.named_parameters():
            if "conv2" in name or "bias1" in name or "bias2" in name or "gain2" in name:
                parameter.add_(0.3 * torch.randn(parameter.shape, generator=generator))


def test_parameter_count_matches_the_original_at_128_filters():
    assert parameter_count(build_energy_network(NetworkConfig(128, 10))) == 5_350_529
    assert parameter_count(build_energy_network(NetworkConfig(128, 0))) == 5_312_129


def test_output_shape_and_structure():
    network = _tiny()
    x, y = torch.rand(5, 3, 32, 32), torch.arange(5)
    energies = network(x, y)
    assert energies.shape == (5,) and torch.isfinite(energies).all()
    convs = [name for name, module in network.named_modules() if isinstance(module, torch.nn.Conv2d)]
    assert convs == []  # every convolution is spectral-normalised
    assert all(not hasattr(layer, "bias") for layer in spectral_layers(network))
    assert network.head.bias is not None  # the only bias in the network
    assert [layer.bounded for layer in spectral_layers(network.blocks[2])] == [False, True, False]


def test_conditioning_changes_the_energy_and_unconditional_ignores_labels():
    network = _tiny()
    _roughen(network)
    x = torch.rand(4, 3, 32, 32)
    same = network(x, torch.full((4,), 3))
    assert torch.equal(same, network(x, torch.full((4,), 3)))
    other = network(x, torch.full((4,), 7))
    assert (same - other).abs().min() > 1e-4

    unconditional = _tiny(num_classes=0)
    assert torch.equal(unconditional(x, None), unconditional(x, torch.full((4,), 7)))


def test_spectral_norms_are_one_where_exact_and_bounded_on_conv2():
    network = _tiny()
    for _ in range(50):
        power_iteration_(network)
    for name, layer in network.named_modules():
        if not isinstance(layer, SpectralConv2d):
            continue
        weight = layer.normalised_weight().detach().reshape(layer.out_channels, -1)
        norm = torch.linalg.matrix_norm(weight, ord=2)
        if layer.bounded:  # conv2 starts at N(0, 1e-10): passed through unscaled
            assert torch.allclose(layer.normalised_weight(), layer.weight)
            assert norm < 1e-6, name
        else:
            assert abs(norm - 1.0) < 1e-3, name
    # The bounded variant shrinks norms above 1 to 1.
    conv2 = network.blocks[0].conv2
    with torch.no_grad():
        conv2.weight.normal_()
    for _ in range(50):
        conv2.power_iteration_()
    weight = conv2.normalised_weight().detach().reshape(conv2.out_channels, -1)
    assert abs(torch.linalg.matrix_norm(weight, ord=2) - 1.0) < 1e-3


def test_forward_does_not_advance_power_iteration():
    network = _tiny()
    before = [layer.u.clone() for layer in spectral_layers(network)]
    network(torch.rand(2, 3, 32, 32), torch.zeros(2, dtype=torch.long))
    assert all(torch.equal(a, layer.u) for a, layer in zip(before, spectral_layers(network), strict=True))
    power_iteration_(network)
    assert not torch.equal(before[0], spectral_layers(network)[0].u)


def test_channels_last_and_bf16_match_float32():
    network = _tiny()
    _roughen(network)
    x, y = torch.rand(6, 3, 32, 32), torch.arange(6)
    reference = network(x, y).detach()
    spread = reference.abs().max() + reference.std()

    channels_last = network.to(memory_format=torch.channels_last)
    fast = channels_last(x.contiguous(memory_format=torch.channels_last), y).detach()
    assert torch.allclose(fast, reference, rtol=1e-4, atol=1e-4 * spread)

    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = network(x, y).detach()
    assert low.dtype == torch.float32
    assert (low - reference).abs().max() < 0.03 * spread
    assert not torch.equal(low, reference)  # bf16 really ran
