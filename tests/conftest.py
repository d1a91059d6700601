"""Shared pytest fixtures. Each stage keeps its fixtures in its own section."""

from __future__ import annotations

from pathlib import Path

import pytest

# --- image study (febm/images): stand-in data in the real on-disk formats ----------------------


@pytest.fixture
def single_torch_thread():
    """Tiny networks gain nothing from threads, and two OpenMP threads on a busy 2-core machine
    slow them down more than tenfold; image tests run on one thread."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def cifar10_standin_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """ROOT/cifar-10-batches-py with data_batch_1..5, test_batch, batches.meta (20 images per file)."""
    from febm.images.standins import make_cifar10_standins

    root = tmp_path_factory.mktemp("cifar10_standin")
    make_cifar10_standins(root, per_batch=20, seed=0)
    return root


@pytest.fixture(scope="session")
def celeba_standin_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """ROOT/celeba/img_align_celeba/000001.jpg ... (178x218 JPEGs) plus list_eval_partition.txt."""
    from febm.images.standins import make_celeba_standins

    root = tmp_path_factory.mktemp("celeba_standin")
    make_celeba_standins(root, count=12, seed=0)
    return root


@pytest.fixture(scope="session")
def cifar10_standin_npz(cifar10_standin_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The prepared cache of the CIFAR-10 stand-ins (100 training images), made by the real prepare-data."""
    from febm.config import validate
    from febm.images.prepare import prepare_data

    out = tmp_path_factory.mktemp("prepared") / "cifar10.npz"
    prepare_data(validate({"images": {"standin_data": True}}), "cifar10", cifar10_standin_root, out)
    return out


# --- 1-D study (febm/toy) ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def one_torch_thread():
    """The toy study runs one thread per process; more only spins on two shared cores."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


# --- Fashion-MNIST (febm/images/fashion_mnist.py): the real Debian files, read once per session ------


@pytest.fixture(scope="session")
def fashion_mnist_npz(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real Fashion-MNIST cache (60,000 + 10,000 images, uint8 (N, 32, 32, 1)) prepared by the real
    prepare-data from Debian's dataset-fashion-mnist (`make setup` installs it; ~2 s). No download:
    a missing package fails here with the one-line error saying how to install it."""
    from febm.config import validate
    from febm.images.prepare import prepare_data

    folder = tmp_path_factory.mktemp("fashion_mnist")
    out = folder / "fashion_mnist.npz"
    prepare_data(validate({"images": {"download": False}}), "fashion_mnist", folder / "empty_root", out)
    return out
