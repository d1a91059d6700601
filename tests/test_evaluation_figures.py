"""Sample figures and Tables 1-2 assembly, with tiny hand-made energies and score records."""

import numpy as np
import pytest
import torch
from torch import nn

from febm.evaluation import figures
from febm.evaluation.tables import TableError, build_table, read_paper_values
from febm.results_schema import read_results, write_results

PAPER = "febm/data/reported_results.csv"


class GreyEnergy(nn.Module):
    """E(x) = |x - 0.5|^2: Langevin chains turn grey."""

    def __init__(self) -> None:
        super().__init__()
        self.offset = nn.Parameter(torch.tensor(0.5))

    def forward(self, x: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        return ((x - self.offset) ** 2).flatten(1).sum(1)


STEPS = {"step_size": 1.0, "noise_std": 0.0, "grad_clip": 0.05}


def test_tile_grid_places_each_image_with_separators():
    tiles = np.arange(2 * 3 * 4 * 4 * 3, dtype=np.uint8).reshape(2, 3, 4, 4, 3)
    canvas = figures.tile_grid(tiles, pad=1)
    assert canvas.shape == (2 * 5 + 1, 3 * 5 + 1, 3)
    np.testing.assert_array_equal(canvas[6:10, 11:15], tiles[1, 2])
    assert np.all(canvas[0] == figures.PAD_VALUE)


def test_uncurated_grid_takes_the_first_images_of_each_class_in_order():
    images = np.arange(12, dtype=np.uint8)[:, None, None, None] * np.ones((1, 2, 2, 3), np.uint8)
    labels = np.array([1, 0, 1, 0, 0, 1, 2, 2, 0, 1, 1, 2])
    tiles = figures.uncurated_tiles(images, labels, rows=3, cols=3)
    assert [int(tile[0, 0, 0]) for tile in tiles[0]] == [1, 3, 4]
    assert [int(tile[0, 0, 0]) for tile in tiles[2]] == [6, 7, 11]


def test_sampling_process_starts_from_noise_and_ends_near_the_minimum():
    frames = figures.sampling_process(
        GreyEnergy(), 3, None, 40, 5, STEPS, torch.Generator().manual_seed(0), "cpu"
    )
    assert frames.shape == (3, 5, 32, 32, 3)
    spread = [np.abs(frames[:, k].astype(float) / 256 - 0.5).mean() for k in range(5)]
    assert spread[0] > 0.2 and spread[-1] < 0.03 and spread == sorted(spread, reverse=True)


def test_inpainting_keeps_the_known_half_and_fills_the_rest_from_the_energy():
    clean = np.full((2, 32, 32, 3), 200, dtype=np.uint8)
    panels = figures.restore(
        GreyEnergy(), clean, None, "inpaint", 40, STEPS, torch.Generator().manual_seed(0), "cpu"
    )
    original, corrupted, restored = panels[:, 0], panels[:, 1], panels[:, 2]
    np.testing.assert_array_equal(original, clean)
    np.testing.assert_array_equal(restored[:, :16], clean[:, :16])
    assert np.abs(restored[:, 16:].astype(float) / 256 - 0.5).max() < 0.03
    assert np.abs(corrupted[:, 16:].astype(float) / 256 - 0.5).mean() > 0.2


def test_nearest_neighbours_find_exact_copies_across_chunks():
    rng = np.random.default_rng(0)
    training = rng.integers(0, 256, size=(50, 4, 4, 3), dtype=np.uint8)
    samples = training[[7, 42]]
    rows = figures.nearest_neighbours(samples, training, k=3, chunk=16)
    assert rows.shape == (2, 4, 4, 4, 3)
    np.testing.assert_array_equal(rows[:, 1], samples)  # the closest training image is the copy itself


def score_record(method: str, divergence: str, seed: int, fid: float, inception: float) -> dict:
    return {
        "_path": f"{method}_{divergence}_{seed}.json",
        "dataset": "cifar10",
        "method": method,
        "divergence": divergence,
        "seed": seed,
        "fid": fid,
        "inception_score": inception,
        "inception_score_std": 0.1,
        "n_samples": 50000,
        "reference": {"reference_set": "train+test", "n": 60000},
        "preprocessing": "tf",
        "protocol": "paper",
        "checkpoint_selection": "final",
        "preset": "paper",
        "scale": "paper",
        "standin_weights": False,
        "standin_data": False,
    }


def test_table1_aggregates_seeds_and_sits_beside_the_paper(tmp_path):
    scores = [
        score_record("febm", "jensen_shannon", 0, 30.0, 8.0),
        score_record("febm", "jensen_shannon", 1, 34.0, 8.4),
        score_record("cd", "kl", 0, 40.0, 7.5),
    ]
    rows = build_table(1, scores, read_paper_values(PAPER, 1), "paper")
    by_key = {row.key: row for row in rows}
    fid, score = (
        by_key[("f-EBM", "jensen_shannon", "fid")],
        by_key[("f-EBM", "jensen_shannon", "inception_score")],
    )
    assert fid.mean == pytest.approx(32.0) and fid.std == pytest.approx(np.std([30, 34], ddof=1))
    assert score.mean == pytest.approx(8.2) and score.n == 2 and score.seeds == "0 1"
    assert float(fid.details["paper"]) == pytest.approx(30.86)
    assert float(score.details["paper"]) == pytest.approx(8.61)
    assert float(by_key[("contrastive_divergence", "kl", "fid")].details["paper"]) == pytest.approx(37.9)
    assert by_key[("SNGAN", "", "inception_score")].source.startswith("cited from the paper")
    assert by_key[("f-EBM", "kl", "fid")].source == "paper only (not run here)"
    assert by_key[("f-EBM", "kl", "fid")].mean is None
    write_results(rows, tmp_path / "table1.csv")
    parsed = read_results(tmp_path / "table1.csv")
    assert parsed[0].method == "DCGAN" and len(parsed) == len(rows)
    assert [(r.key, r.details) for r in parsed] == [
        (r.key, {k: v for k, v in r.details.items() if v}) for r in rows
    ]
    parsed_fid = next(r for r in parsed if r.key == fid.key)
    assert parsed_fid.std == pytest.approx(fid.std, rel=1e-5)


def test_table2_has_no_inception_score_and_rejects_other_datasets():
    record = {**score_record("febm", "kl", 0, 30.0, 2.0), "dataset": "celeba32"}
    rows = build_table(2, [record], read_paper_values(PAPER, 2), "paper")
    ours = [row for row in rows if row.divergence == "kl" and row.method == "f-EBM"]
    assert [row.metric for row in ours] == ["fid"] and ours[0].mean == pytest.approx(30.0)
    with pytest.raises(TableError, match="Table 2 is celeba32"):
        build_table(2, [score_record("febm", "kl", 0, 1.0, 1.0)], {}, "paper")


def test_image_figure_grid_states_the_run_its_samples_record(tmp_path, capsys):
    """`febm sample` output -> `febm image-figure --figure grid`: the PNG names the sampled checkpoint's run,
    whatever the output is called; samples that record none give a grid that says so, and a warning."""
    import json

    from PIL import Image

    from febm.cli import main
    from febm.images.checkpoint import save_energy_model
    from febm.images.networks import NetworkConfig, build_energy_network
    from febm.images.sampling import sample_to_file

    config = tmp_path / "config.yaml"
    config.write_text(json.dumps({"preset": "smoke", "evaluation": {"plain_protocol": {"steps": 2}}}))
    energy = build_energy_network(NetworkConfig(num_filters=4, num_classes=10, image_channels=1))
    meta = {"dataset": "fashion_mnist", "method": "febm", "divergence": "squared_hellinger", "seed": 5}
    save_energy_model(tmp_path / "model.pt", energy, {**meta, "iterations": 3, "preset": "smoke"})
    samples = tmp_path / "samples.npz"
    sample_to_file(checkpoint=tmp_path / "model.pt", count=4, protocol="plain", out=samples,
                   config_paths=[config], seed=0, device="cpu")  # fmt: skip
    grid = ["image-figure", "--figure", "grid", "--config", str(config)]
    assert main([*grid, "--images", str(samples), "--out", str(tmp_path / "cifar10_cd_kl_seed0.png")]) == 0
    with Image.open(tmp_path / "cifar10_cd_kl_seed0.png") as image:
        assert {key: image.text[f"febm.{key}"] for key in meta} == {k: str(v) for k, v in meta.items()}
        assert image.text["febm.figure"] == "uncurated_grid"
    np.savez(tmp_path / "bare.npz", images=np.zeros((4, 8, 8, 3), np.uint8))
    assert main([*grid, "--images", str(tmp_path / "bare.npz"), "--out", str(tmp_path / "bare.png")]) == 0
    assert "bare.npz records no run identity" in capsys.readouterr().err
    with Image.open(tmp_path / "bare.png") as image:
        assert {key for key in image.text if key.startswith("febm.")} == {"febm.figure"}
