"""Fashion-MNIST data: the real Debian files, stand-ins in the real idx format, and every bad input
(missing, truncated, mismatched labels, checksum) failing on one line without writing the cache."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from febm.cli import main
from febm.config import validate
from febm.images import fashion_mnist as fm
from febm.images.data import STANDIN_MARKER, DataError, load_cache
from febm.images.prepare import prepare_data
from febm.images.standins import make_fashion_mnist_standins

REAL_CONFIG = validate({"images": {"download": False}})
STANDIN_CONFIG = validate({"images": {"standin_data": True, "download": False}})


@pytest.fixture(scope="module")
def standin_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("fashion_mnist_standin")
    make_fashion_mnist_standins(root, train_count=100, test_count=20, seed=0)
    return root


@pytest.fixture
def editable_standins(standin_root: Path, tmp_path: Path) -> Path:
    """A private copy of the stand-ins that a test may damage."""
    root = tmp_path / "root"
    shutil.copytree(standin_root, root)
    return root


@pytest.fixture
def no_debian_folder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Pretend dataset-fashion-mnist is not installed."""
    monkeypatch.setattr(fm, "DEBIAN_FOLDER", tmp_path / "not-installed")


def _idx_path(root: Path, key: str) -> Path:
    return root / fm.ROOT_FOLDER / f"{fm.FASHION_MNIST_FILES[key][0]}.gz"


def _fails_writing_nothing(config: dict, root: Path, tmp_path: Path, pattern: str) -> str:
    out_dir = tmp_path / "prepared"
    with pytest.raises(DataError, match=pattern) as caught:
        prepare_data(config, "fashion_mnist", root, out_dir / "fashion_mnist.npz")
    message = str(caught.value)
    assert "\n" not in message
    assert not out_dir.exists() or not any(out_dir.iterdir())  # no cache, no temporary file
    return message


# --- the real data ------------------------------------------------------------------------------


def test_real_debian_files_make_a_balanced_padded_cache(fashion_mnist_npz: Path):
    with np.load(fashion_mnist_npz) as archive:
        arrays = {key: archive[key] for key in archive.files}
    assert arrays["images"].shape == (60_000, 32, 32, 1) and arrays["images"].dtype == np.uint8
    assert arrays["test_images"].shape == (10_000, 32, 32, 1) and arrays["test_images"].dtype == np.uint8
    assert np.bincount(arrays["labels"]).tolist() == [6_000] * 10
    assert np.bincount(arrays["test_labels"]).tolist() == [1_000] * 10
    assert str(arrays["dataset"]) == "fashion_mnist" and not bool(arrays["standin"])
    assert int(arrays["num_classes"]) == 10 and str(fm.DEBIAN_FOLDER) in str(arrays["source"])
    for split in ("images", "test_images"):
        border = np.ones((32, 32), dtype=bool)
        border[2:30, 2:30] = False
        assert not arrays[split][:, border].any()  # the 2-pixel padding is background
    # Published facts about Fashion-MNIST: mean pixel 0.2860 (of the 28x28 train images); the first
    # training images are an ankle boot (9) then two T-shirts (0), the first test image an ankle boot.
    assert arrays["images"][:, 2:30, 2:30].mean() / 255 == pytest.approx(0.2860, abs=5e-4)
    assert arrays["labels"][:3].tolist() == [9, 0, 0] and arrays["test_labels"][0] == 9
    data = load_cache(fashion_mnist_npz, max_images=500)
    assert data.images.shape == (500, 1, 32, 32) and data.images.dtype == torch.uint8
    assert data.num_classes == 10 and not data.standin and data.dataset == "fashion_mnist"


def test_a_changed_byte_fails_the_checksum(tmp_path: Path, no_debian_folder: None):
    # The real files, except two train labels of different classes swapped: counts and balance still
    # hold, so only the checksum of the decompressed content can notice.
    folder = tmp_path / "root" / fm.ROOT_FOLDER
    folder.mkdir(parents=True)
    for name, _ in fm.FASHION_MNIST_FILES.values():
        (folder / f"{name}.gz").symlink_to(Path("/usr/share/datasets/fashion-mnist") / f"{name}.gz")
    labels_file = folder / f"{fm.FASHION_MNIST_FILES['train_labels'][0]}.gz"
    content = bytearray(gzip.decompress(labels_file.read_bytes()))
    first_t_shirt = 8 + content[8:].index(0)
    content[8], content[first_t_shirt] = content[first_t_shirt], content[8]
    labels_file.unlink()
    labels_file.write_bytes(gzip.compress(bytes(content)))
    message = _fails_writing_nothing(REAL_CONFIG, tmp_path / "root", tmp_path, r"SHA-256 check")
    assert "train-labels-idx1-ubyte" in message and "reinstall" in message


# --- stand-ins ----------------------------------------------------------------------------------


def test_standins_from_the_command_line_prepare(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    root = tmp_path / "root"
    assert main(["make-standins", "--kind", "fashion_mnist", "--out", str(root)]) == 0
    assert sorted(p.name for p in (root / fm.ROOT_FOLDER).iterdir()) == sorted(
        f"{name}.gz" for name, _ in fm.FASHION_MNIST_FILES.values()
    )
    config = tmp_path / "standin.yaml"
    config.write_text("images: {standin_data: true, download: false}\n")
    out = tmp_path / "fashion_mnist.npz"
    capsys.readouterr()
    argv = ["prepare-data", "--config", str(config), "--dataset", "fashion_mnist", "--root", str(root)]
    assert main([*argv, "--out", str(out)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["train_images"] == 100 and summary["image_shape"] == [32, 32, 1] and summary["standin"]
    data = load_cache(out)
    assert data.images.shape == (100, 1, 32, 32) and data.standin and data.num_classes == 10
    assert torch.bincount(data.labels).tolist() == [10] * 10
    with np.load(out) as archive:
        assert archive["test_images"].shape == (20, 32, 32, 1)
        assert np.bincount(archive["test_labels"]).tolist() == [2] * 10
    # The stand-in classes differ (so conditioning has something to learn): class means are distinct.
    means = torch.stack([data.images[data.labels == k].float().mean(0) for k in range(10)])
    assert torch.cdist(means.flatten(1), means.flatten(1)).fill_diagonal_(1e9).min() > 100


def test_torchvision_layout_with_uncompressed_files(standin_root: Path, tmp_path: Path):
    raw_folder = tmp_path / "root" / fm.TORCHVISION_FOLDER
    raw_folder.mkdir(parents=True)
    for name, _ in fm.FASHION_MNIST_FILES.values():
        gzipped = (standin_root / fm.ROOT_FOLDER / f"{name}.gz").read_bytes()
        (raw_folder / name).write_bytes(gzip.decompress(gzipped))
    out = tmp_path / "fm.npz"
    prepare_data(STANDIN_CONFIG, "fashion_mnist", tmp_path / "root", out)
    with np.load(out) as archive, np.load(_prepared(standin_root, tmp_path)) as reference:
        assert np.array_equal(archive["images"], reference["images"])
        assert np.array_equal(archive["test_labels"], reference["test_labels"])


def _prepared(root: Path, tmp_path: Path) -> Path:
    out = tmp_path / "reference.npz"
    prepare_data(STANDIN_CONFIG, "fashion_mnist", root, out)
    return out


def test_real_checks_refuse_standins(editable_standins: Path, tmp_path: Path, no_debian_folder: None):
    _fails_writing_nothing(REAL_CONFIG, editable_standins, tmp_path, r"stand-in data.*standin_data is false")
    (editable_standins / STANDIN_MARKER).unlink()  # unmarked: the counts (then the checksums) refuse it
    _fails_writing_nothing(
        REAL_CONFIG, editable_standins, tmp_path, r"holds 100 train images, expected 60,000"
    )


def test_standin_counts_must_keep_classes_balanced(tmp_path: Path):
    with pytest.raises(DataError, match="multiple of 10"):
        make_fashion_mnist_standins(tmp_path, train_count=95)
    assert not (tmp_path / fm.ROOT_FOLDER).exists()


# --- bad input ----------------------------------------------------------------------------------


def test_missing_data_says_both_ways_to_get_it(
    tmp_path: Path,
    no_debian_folder: None,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
):
    for pattern in (r"sudo apt-get install dataset-fashion-mnist", r"images\.download: true on a machine"):
        _fails_writing_nothing(REAL_CONFIG, tmp_path / "root", tmp_path, pattern)
    _fails_writing_nothing(STANDIN_CONFIG, tmp_path / "root", tmp_path, r"make-standins --kind fashion_mnist")

    def offline_download(
        root: Path,
    ) -> None:  # what torchvision does without internet (importing it costs 4 s)
        print("Downloading http://fashion-mnist.example/train-images-idx3-ubyte.gz")
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz:\nName or service not known")

    monkeypatch.setattr(fm, "torchvision_download", offline_download)
    downloading = validate({"images": {"download": True}})
    message = _fails_writing_nothing(
        downloading, tmp_path / "root", tmp_path, r"download failed: RuntimeError"
    )
    assert "apt-get install dataset-fashion-mnist" in message
    assert capsys.readouterr().out == ""  # torchvision's chatter stays off prepare-data's JSON stdout


def test_a_successful_download_is_found_and_checked(
    tmp_path: Path, no_debian_folder: None, monkeypatch: pytest.MonkeyPatch
):
    def download(root: Path) -> None:  # into torchvision's layout
        folder = root / fm.TORCHVISION_FOLDER
        folder.mkdir(parents=True)
        for name, _ in fm.FASHION_MNIST_FILES.values():
            (folder / f"{name}.gz").symlink_to(Path("/usr/share/datasets/fashion-mnist") / f"{name}.gz")

    monkeypatch.setattr(fm, "torchvision_download", download)
    out = tmp_path / "fm.npz"
    prepare_data(validate({"images": {"download": True}}), "fashion_mnist", tmp_path / "root", out)
    with np.load(out) as archive:
        assert archive["images"].shape == (60_000, 32, 32, 1)
        assert str(tmp_path / "root" / fm.TORCHVISION_FOLDER) in str(archive["source"])


def test_a_partial_folder_is_named(editable_standins: Path, tmp_path: Path):
    _idx_path(editable_standins, "test_labels").unlink()
    _fails_writing_nothing(
        STANDIN_CONFIG, editable_standins, tmp_path, r"lacks t10k-labels-idx1-ubyte.*interrupted"
    )


def test_truncated_gzip_file(editable_standins: Path, tmp_path: Path):
    path = _idx_path(editable_standins, "train_images")
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    _fails_writing_nothing(
        STANDIN_CONFIG, editable_standins, tmp_path, r"train-images.*cannot be decompressed.*truncated"
    )


def test_truncated_uncompressed_idx_file(editable_standins: Path, tmp_path: Path):
    path = _idx_path(editable_standins, "test_images")
    path.write_bytes(gzip.compress(gzip.decompress(path.read_bytes())[:-100]))
    message = _fails_writing_nothing(
        STANDIN_CONFIG, editable_standins, tmp_path, r"t10k-images.*is truncated"
    )
    assert "(20, 28, 28)" in message


def test_label_file_that_does_not_match_the_image_file(editable_standins: Path, tmp_path: Path):
    # The test split's labels under the train name: a valid idx label file, but 20 labels for 100 images.
    shutil.copyfile(_idx_path(editable_standins, "test_labels"), _idx_path(editable_standins, "train_labels"))
    message = _fails_writing_nothing(
        STANDIN_CONFIG, editable_standins, tmp_path, r"does not match the image file"
    )
    assert "20 labels for 100 images" in message


@pytest.mark.parametrize(
    ("labels", "pattern"),
    [
        (np.arange(100) % 11, r"labels up to 10, outside 0\.\.9"),
        (np.r_[np.arange(90) % 10, np.zeros(10, dtype=int)], r"not balanced"),  # 19 zeros, 9 of the rest
    ],
)
def test_labels_out_of_range_or_unbalanced(editable_standins: Path, tmp_path: Path, labels, pattern):
    _idx_path(editable_standins, "train_labels").write_bytes(gzip.compress(fm.encode_idx(labels)))
    _fails_writing_nothing(STANDIN_CONFIG, editable_standins, tmp_path, pattern)


def test_images_file_in_place_of_labels_is_not_an_idx_label_file(editable_standins: Path, tmp_path: Path):
    shutil.copyfile(
        _idx_path(editable_standins, "train_images"), _idx_path(editable_standins, "train_labels")
    )
    _fails_writing_nothing(STANDIN_CONFIG, editable_standins, tmp_path, r"not an idx label file \(magic 2051")
