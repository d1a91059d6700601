"""Image data: the real CIFAR-10 pickle and CelebA folder paths on stand-ins, the cache, batches."""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from febm.config import validate
from febm.images import celeba
from febm.images import data as raw
from febm.images.data import DataError, batch_indices, dequantise, load_cache
from febm.images.prepare import prepare_data

pytestmark = pytest.mark.usefixtures("single_torch_thread")

STANDIN_CONFIG = {"images": {"standin_data": True}}


def _pickle_of(root: Path, name: str) -> dict:
    with (root / raw.CIFAR10_FOLDER / name).open("rb") as handle:
        return pickle.load(handle, encoding="latin1")


def test_cifar10_pickles_load_as_rgb_nhwc(cifar10_standin_root):
    images, labels = raw.read_cifar10_batch(cifar10_standin_root / raw.CIFAR10_FOLDER / "data_batch_2", None)
    entry = _pickle_of(cifar10_standin_root, "data_batch_2")
    assert images.shape == (20, 32, 32, 3) and images.dtype == np.uint8
    assert labels.tolist() == entry["labels"]
    # Rows are R(1024) G(1024) B(1024) planes of 32x32, row-major.
    row = entry["data"][7]
    assert images[7, 3, 5, 0] == row[3 * 32 + 5]
    assert images[7, 3, 5, 1] == row[1024 + 3 * 32 + 5]
    assert images[7, 3, 5, 2] == row[2048 + 3 * 32 + 5]


def test_prepare_cifar10_cache_and_batches(cifar10_standin_npz):
    data = load_cache(cifar10_standin_npz)
    assert data.images.shape == (100, 3, 32, 32) and data.images.dtype == torch.uint8
    assert data.num_classes == 10 and data.standin and data.dataset == "cifar10"
    with np.load(cifar10_standin_npz) as archive:
        assert archive["test_images"].shape == (20, 32, 32, 3)
    x = dequantise(data.images[:10], torch.Generator().manual_seed(0))
    assert 0 <= x.min() and x.max() < 1
    assert ((x * 256).floor() == data.images[:10].float()).all()  # (k + U) / 256 stays in level k

    epoch = torch.cat([batch_indices(100, 32, iteration, seed=0, rank=0) for iteration in range(3)])
    assert len(set(epoch.tolist())) == 96  # one epoch: no repeats, the last incomplete batch dropped
    assert torch.equal(batch_indices(100, 32, 4, seed=0, rank=0), batch_indices(100, 32, 4, seed=0, rank=0))
    assert not torch.equal(
        batch_indices(100, 32, 4, seed=0, rank=0), batch_indices(100, 32, 4, seed=0, rank=1)
    )


def test_cifar10_checksums_reject_standins_unless_configured(cifar10_standin_root, tmp_path):
    with pytest.raises(DataError, match=r"md5 check.*standin_data"):
        raw.load_cifar10(cifar10_standin_root, verify_md5=True)
    with pytest.raises(DataError, match="holds stand-in data"):
        prepare_data(validate({}), "cifar10", cifar10_standin_root, tmp_path / "x.npz")
    assert not (tmp_path / "x.npz").exists()


def test_truncated_and_corrupted_pickles_are_reported(cifar10_standin_root, tmp_path):
    root = tmp_path / "copy"
    shutil.copytree(cifar10_standin_root, root)
    batch = root / raw.CIFAR10_FOLDER / "data_batch_3"
    batch.write_bytes(batch.read_bytes()[:500])
    with pytest.raises(DataError, match=r"data_batch_3.*truncated or corrupted"):
        prepare_data(validate(STANDIN_CONFIG), "cifar10", root, tmp_path / "x.npz")
    batch.write_bytes(pickle.dumps({"data": np.zeros((4, 100), np.uint8), "labels": [0, 1, 2, 3]}))
    with pytest.raises(DataError, match=r"data_batch_3.*shape \(4, 100\)"):
        prepare_data(validate(STANDIN_CONFIG), "cifar10", root, tmp_path / "x.npz")
    assert not (tmp_path / "x.npz").exists()


def test_missing_cifar10_without_download_names_the_files(tmp_path):
    config = validate({"images": {"download": False}})
    with pytest.raises(DataError, match=r"cifar-10-python\.tar\.gz.*cifar-10-batches-py/data_batch_1"):
        prepare_data(config, "cifar10", tmp_path, tmp_path / "x.npz")


def test_celeba_folder_is_cropped_and_resized(celeba_standin_root, tmp_path):
    config = validate({"images": {"standin_data": True}})
    summary = prepare_data(config, "celeba32", celeba_standin_root, tmp_path / "celeba32.npz")
    assert summary["train_images"] == 12
    data = load_cache(tmp_path / "celeba32.npz")
    assert data.images.shape == (12, 3, 32, 32) and data.num_classes == 0
    # The 140-pixel centre crop is mostly face: the centre of a 32x32 image is skin, not background.
    face = celeba.preprocess_face(celeba.find_celeba_folder(celeba_standin_root) / "000001.jpg", 140)
    whole = celeba.preprocess_face(celeba.find_celeba_folder(celeba_standin_root) / "000001.jpg", 0)
    assert face.shape == whole.shape == (32, 32, 3)
    assert not np.array_equal(face, whole)

    config = validate({"images": {"standin_data": True, "celeba32": {"split": "test"}}})
    summary = prepare_data(config, "celeba32", celeba_standin_root, tmp_path / "test.npz")
    assert 0 < summary["train_images"] < 12


def test_empty_or_broken_celeba_folders_are_clear_errors(celeba_standin_root, tmp_path):
    (tmp_path / "celeba" / "img_align_celeba").mkdir(parents=True)
    config = validate({"images": {"standin_data": True}})
    with pytest.raises(DataError, match=r"holds no images"):
        prepare_data(config, "celeba32", tmp_path, tmp_path / "x.npz")
    folder = tmp_path / "celeba" / "img_align_celeba"
    original = celeba.find_celeba_folder(celeba_standin_root) / "000001.jpg"
    (folder / "000001.jpg").write_bytes(original.read_bytes()[:300])
    with pytest.raises(DataError, match=r"000001\.jpg.*truncated or corrupted"):
        prepare_data(config, "celeba32", tmp_path, tmp_path / "x.npz")
    with pytest.raises(DataError, match=r"list_eval_partition\.txt"):
        prepare_data(
            validate({"images": {"standin_data": True, "celeba32": {"split": "train"}}}),
            "celeba32",
            tmp_path,
            tmp_path / "x.npz",
        )


def test_unreadable_cache_names_prepare_data(tmp_path):
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(DataError, match="prepare-data"):
        load_cache(tmp_path / "bad.npz")
    with pytest.raises(DataError, match="does not exist"):
        load_cache(tmp_path / "missing.npz")
