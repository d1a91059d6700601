"""The Inception path without real weights: Kaiming-random weights saved where pytorch-fid caches the real
ones, loaded through the same code as real weights. Stand-in numbers are only compared with each other
(self vs shifted, ours vs pytorch-fid's), never asserted as science.

The network runs at 299x299 on a few images only (about 0.1-0.4 s per image on 2 CPU cores).
"""

import io
import json
import sys
import time
import warnings

import numpy as np
import pytest
import torch

from febm.cli import main
from febm.evaluation.extract import run_inception
from febm.evaluation.image_files import load_image_set, save_png_folder
from febm.evaluation.inception import load_fid_inception
from febm.evaluation.preprocessing import resize_bilinear_tf1
from febm.evaluation.weights import (
    WEIGHTS_FILENAME,
    InceptionWeightsError,
    download_weights,
    load_state_dict,
    resolve_weights_path,
    standin_sidecar,
    weights_info,
    write_standin,
)


@pytest.fixture(scope="module")
def torch_home(tmp_path_factory):
    """A TORCH_HOME whose hub cache holds stand-in weights, as a pre-seeded cache would hold real ones."""
    home = tmp_path_factory.mktemp("torch_home")
    write_standin(home / "hub" / "checkpoints" / WEIGHTS_FILENAME, seed=0)
    return home


@pytest.fixture
def hub_weights(torch_home, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(torch_home))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)
    return torch_home / "hub" / "checkpoints" / WEIGHTS_FILENAME


def structured_images(count: int, seed: int) -> np.ndarray:
    """Smooth random colour gradients plus noise: more image-like than i.i.d. pixels."""
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0, 1, 32)
    base = rng.uniform(0, 255, size=(count, 1, 1, 3)) * (0.5 + 0.5 * ramp[None, :, None, None])
    return np.clip(base + rng.normal(0, 20, size=(count, 32, 32, 3)), 0, 255).astype(np.uint8)


# --- preprocessing ---------------------------------------------------------------------------------


def tf1_resize_reference(image: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """TF1 resize_bilinear(align_corners=False) written per pixel from TF's kernel (legacy scaler)."""
    in_h, in_w = image.shape
    scale_y, scale_x = np.float32(in_h / out_h), np.float32(in_w / out_w)
    out = np.zeros((out_h, out_w), dtype=np.float32)
    for i in range(out_h):
        y = np.float32(i) * scale_y
        y0, y1 = int(np.floor(y)), min(int(np.ceil(y)), in_h - 1)
        for j in range(out_w):
            x = np.float32(j) * scale_x
            x0, x1 = int(np.floor(x)), min(int(np.ceil(x)), in_w - 1)
            top = image[y0, x0] + (image[y0, x1] - image[y0, x0]) * (x - np.float32(x0))
            bottom = image[y1, x0] + (image[y1, x1] - image[y1, x0]) * (x - np.float32(x0))
            out[i, j] = top + (bottom - top) * (y - np.float32(y0))
    return out


def test_tf1_resize_has_no_half_pixel_offset():
    # 2 -> 4: TF1 samples source positions 0, 0.5, 1, 1.5 (clamped): [0, .5, 1, 1];
    # half-pixel resizing (PyTorch, TF2) would give [0, .25, .75, 1].
    row = torch.tensor([[[[0.0, 1.0]]]])
    assert resize_bilinear_tf1(row, 4)[0, 0, 0].tolist() == [0.0, 0.5, 1.0, 1.0]


@pytest.mark.parametrize(("in_h", "in_w", "size"), [(7, 5, 11), (32, 32, 75)])
def test_tf1_resize_matches_the_per_pixel_tf_kernel(in_h, in_w, size):
    image = np.random.default_rng(0).uniform(0, 255, size=(in_h, in_w)).astype(np.float32)
    ours = resize_bilinear_tf1(torch.from_numpy(image)[None, None], size)[0, 0].numpy()
    np.testing.assert_allclose(ours, tf1_resize_reference(image, size, size), rtol=0, atol=1e-4)


# --- weights ---------------------------------------------------------------------------------------


def test_weights_resolve_from_the_pre_seeded_torch_hub_cache(hub_weights):
    assert resolve_weights_path() == hub_weights
    info = weights_info(hub_weights)
    assert info["standin"] is True and info["sha256_matches_release_name"] is False


def test_missing_weights_name_the_fetch_command(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)
    with pytest.raises(InceptionWeightsError, match="fetch-inception"):
        resolve_weights_path()
    with pytest.raises(InceptionWeightsError, match="do not exist"):
        resolve_weights_path(configured=tmp_path / "nowhere.pth")


def test_truncated_weights_fail_with_a_message(hub_weights, tmp_path):
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(hub_weights.read_bytes()[:100_000])
    with pytest.raises(InceptionWeightsError, match="truncated"):
        load_state_dict(truncated)


def test_wrong_layout_fails_with_the_offending_key(hub_weights, tmp_path):
    state = torch.load(hub_weights, weights_only=True)
    state["fc.weight"] = state["fc.weight"][:1000]  # torchvision's 1000-class head, not the FID network's
    del state["Mixed_7c.branch_pool.conv.weight"]
    wrong = tmp_path / "wrong.pth"
    torch.save(state, wrong)
    with pytest.raises(InceptionWeightsError, match=r"fc\.weight.*1008") as error:
        load_state_dict(wrong)
    assert "Mixed_7c.branch_pool.conv.weight" in str(error.value)


def test_legacy_serialisation_loads_with_weights_only(hub_weights, tmp_path):
    # The released file predates torch's zip format; weights_only=True must still read that format.
    legacy = tmp_path / "legacy.pth"
    torch.save(torch.load(hub_weights, weights_only=True), legacy, _use_new_zipfile_serialization=False)
    assert len(load_state_dict(legacy)) == 566


def test_standin_flag_follows_the_file_not_the_name(hub_weights, tmp_path):
    copy = tmp_path / WEIGHTS_FILENAME
    copy.write_bytes(hub_weights.read_bytes())
    assert weights_info(copy)["standin"] is False  # no sidecar: an unknown file, not claimed stand-in
    sidecar = standin_sidecar(copy)
    sidecar.write_bytes(standin_sidecar(hub_weights).read_bytes())
    assert weights_info(copy)["standin"] is True
    copy.write_bytes(hub_weights.read_bytes()[:-1] + b"x")  # other content under the stand-in's sidecar
    assert weights_info(copy)["standin"] is False


def test_download_fails_fast_offline_and_leaves_no_file(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty_home"))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)
    for proxy in ("http_proxy", "https_proxy", "all_proxy"):  # a CI proxy would turn "refused" into a wait
        monkeypatch.delenv(proxy, raising=False)
        monkeypatch.delenv(proxy.upper(), raising=False)
    target = tmp_path / "weights" / WEIGHTS_FILENAME
    started = time.monotonic()
    with pytest.raises(InceptionWeightsError, match="cannot download"):
        download_weights(target, url="http://127.0.0.1:9/pt_inception.pth", timeout_s=20)
    # A refused connection fails at once (~0.01 s here; 2.5-3.5 s even in a fresh process that still has
    # to import torch); waiting out the 20 s timeout, or retrying, would not pass.
    assert time.monotonic() - started < 10
    assert not target.exists() and list(target.parent.iterdir()) == []


def test_inception_score_logits_are_pool3_times_fc_weight_without_the_bias(hub_weights):
    from febm.evaluation.inception import FidInception

    state = torch.load(hub_weights, weights_only=True)
    state["fc.bias"] = torch.linspace(-3, 3, 1008)  # the stand-in's bias is zero; make leaving it out visible
    model = FidInception(state, preprocessing="tf", input_size=75)  # 75: the smallest valid input, for speed
    with torch.inference_mode():
        pool3, logits = model(torch.from_numpy(structured_images(2, seed=4)).permute(0, 3, 1, 2).contiguous())
    expected = pool3.double() @ state["fc.weight"].double().T
    torch.testing.assert_close(logits, expected, rtol=1e-12, atol=1e-12)
    assert pool3.shape == (2, 2048) and logits.dtype == torch.float64


# --- features against pytorch-fid --------------------------------------------------------------------


def test_features_equal_pytorch_fid_command_line_statistics(hub_weights, tmp_path, monkeypatch):
    """Same PNG folder, pytorch-fid's own CLI (--save-stats, real loading path via TORCH_HOME) vs ours."""
    from pytorch_fid import fid_score

    folder = tmp_path / "pngs"
    save_png_folder(structured_images(3, seed=1), folder)
    stats = tmp_path / "theirs.npz"
    argv = ["pytorch_fid", "--save-stats", str(folder), str(stats), "--device", "cpu", "--num-workers", "0"]
    monkeypatch.setattr(sys, "argv", argv)
    monkeypatch.setattr(sys, "stderr", io.StringIO())  # their tqdm
    fid_score.main()
    theirs = np.load(stats)

    images = load_image_set(folder).images
    for channels_last, tolerance in ((False, 1e-6), (True, 1e-4)):
        model = load_fid_inception(hub_weights, preprocessing="pytorch_fid", channels_last=channels_last)
        ours = run_inception(images, model, batch_size=3, progress=False)
        scale = np.abs(theirs["sigma"]).max()
        np.testing.assert_allclose(ours.mu, theirs["mu"], rtol=tolerance, atol=tolerance * 1e-3)
        np.testing.assert_allclose(ours.sigma, theirs["sigma"], rtol=0, atol=tolerance * scale)


# --- the commands end to end ---------------------------------------------------------------------------


def test_fid_stats_and_score_commands_self_and_shifted(hub_weights, tmp_path, capsys):
    """FID of the reference images against their own statistics is ~0; a brightened copy scores higher."""
    reference = structured_images(5, seed=2)
    np.savez(
        tmp_path / "cifar10.npz",
        images=reference[:3],
        labels=np.zeros(3, dtype=np.int64),
        test_images=reference[3:],
        test_labels=np.zeros(2, dtype=np.int64),
        num_classes=np.array(10),
        standin=np.array(True),
        dataset=np.array("cifar10"),
        source=np.array("test images"),
    )
    config = tmp_path / "config.yaml"
    config.write_text("preset: smoke\nevaluation:\n  inception_score: {splits: 2}\n  device: cpu\n")
    stats = tmp_path / "stats" / "cifar10.npz"
    data = tmp_path / "cifar10.npz"
    assert (
        main(
            [
                "fid-stats",
                "--config",
                str(config),
                "--dataset",
                "cifar10",
                "--data",
                str(data),
                "--out",
                str(stats),
            ]
        )
        == 0
    )

    brightened = np.clip(reference.astype(np.int16) + 60, 0, 255).astype(np.uint8)
    scores = {}
    for name, images in (("self", reference), ("shifted", brightened)):
        samples = tmp_path / f"{name}.npz"
        # the layout `febm sample` writes: labels -1 when unconditional, the model's metadata nested
        model = {"dataset": "cifar10", "method": "febm", "divergence": "kl", "seed": 3, "standin_data": True}
        record = json.dumps({"protocol": "paper", "settings": {"steps_per_call": 5}, "model": model})
        np.savez(samples, images=images, labels=np.full(len(images), -1), record=np.array(record))
        out = tmp_path / f"{name}.json"
        command = ["score", "--images", str(samples), "--ref-stats", str(stats), "--out", str(out)]
        assert main([*command, "--config", str(config)]) == 0
        scores[name] = json.loads(out.read_text())
    capsys.readouterr()

    assert abs(scores["self"]["fid"]) < 1e-4 * scores["shifted"]["fid"]
    record = scores["shifted"]
    assert record["standin_weights"] is True and record["standin_data"] is True
    assert record["reference"]["reference_set"] == "train+test" and record["reference"]["n"] == 5
    assert record["n_samples"] == 5 and record["protocol"] == "paper" and record["preset"] == "smoke"
    assert (record["method"], record["divergence"], record["seed"]) == ("febm", "kl", 3)
    assert record["protocol_settings"] == {"steps_per_call": 5}
    assert record["preprocessing"] == "tf" and "provenance" in record

    # Table 1 from these scores: our row beside the paper's, GAN rows cited.
    table = tmp_path / "table1.csv"
    paper = "febm/data/reported_results.csv"
    command = [
        "image-table",
        "--table",
        "1",
        "--config",
        str(config),
        "--scores",
        str(tmp_path / "shifted.json"),
    ]
    assert main([*command, "--paper", paper, "--out", str(table)]) == 0
    text = table.read_text()
    assert "this reproduction" in text and "cited from the paper's Table 1 (not re-run)" in text


def test_score_refuses_statistics_made_another_way(hub_weights, tmp_path, capsys):
    stats = tmp_path / "stats.npz"
    meta = {"preprocessing": "pytorch_fid", "weights_sha256": weights_info(hub_weights)["sha256"]}
    np.savez(stats, mu=np.zeros(2048), sigma=np.eye(2048), meta=np.array(json.dumps(meta)))
    samples = tmp_path / "samples.npz"
    np.savez(samples, images=structured_images(10, seed=3))
    assert main(["score", "--images", str(samples), "--ref-stats", str(stats)]) == 2
    assert "preprocessing" in capsys.readouterr().err

    meta.update(preprocessing="tf", dataset="celeba32")
    np.savez(stats, mu=np.zeros(2048), sigma=np.eye(2048), meta=np.array(json.dumps(meta)))
    assert main(["score", "--images", str(samples), "--ref-stats", str(stats), "--dataset", "cifar10"]) == 2
    assert "samples are from 'cifar10'" in capsys.readouterr().err


def test_fetch_standin_writes_a_marked_file(tmp_path, capsys):
    out = tmp_path / "inception" / WEIGHTS_FILENAME
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert main(["fetch-inception", "--standin", "--out", str(out)]) == 0
    assert "STAND-IN" in capsys.readouterr().out
    assert weights_info(out)["standin"] is True and len(load_state_dict(out)) == 566
