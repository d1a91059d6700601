"""The fidelity switchboard (febm.fidelity): the paper preset follows the released code in every switch,
config/fast.yaml is Algorithm 1 as written, the switches do what they say, every stage records them and
the report lists them per run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from febm.config import load_config, validate
from febm.fidelity import SWITCHES, deviations, fidelity_record, switches
from febm.images.replay import ReplayBuffer
from febm.reporting.fidelity import fidelity_sections

REPO = Path(__file__).resolve().parents[1]
PAPER_DATASETS = ("cifar10", "celeba32")
TRAINING_RECIPE = {"training.second_sampler_run", "replay.relabel", "replay.original_quantisation"}


@pytest.mark.parametrize("dataset", PAPER_DATASETS)
def test_the_paper_preset_follows_the_released_code_in_every_switch(dataset):
    for config in (validate({}), load_config([REPO / "config" / "config.yaml"])):
        record = fidelity_record(config, dataset)
        assert [entry["key"] for entry in record if not entry["follows_original"]] == []
        assert len(record) == len(switches(dataset)) >= 12
    assert {switch.stage for switch in SWITCHES} == {"train", "sample", "score"}


def test_fast_overlay_is_algorithm_1_as_written_and_only_that():
    config = load_config([REPO / "config" / "config.yaml", REPO / "config" / "fast.yaml"])
    for dataset in (*PAPER_DATASETS, "fashion_mnist"):
        assert {entry.split(" = ")[0] for entry in deviations(config, dataset)} == {
            f"images.{dataset}.{key}" for key in TRAINING_RECIPE
        }


def test_a_switch_is_recorded_only_for_the_methods_and_stages_it_acts_on():
    config = validate({})
    cd_keys = {entry["key"] for entry in fidelity_record(config, "cifar10", "train", "cd")}
    assert "images.cifar10.training.second_sampler_run" not in cd_keys
    assert "images.cifar10.replay.relabel" in cd_keys
    assert "images.cifar10.training.second_sampler_run" in {
        entry["key"] for entry in fidelity_record(config, "cifar10", "train", "febm")
    }
    assert [entry["key"] for entry in fidelity_record(config, "fashion_mnist", "score")] == []
    assert "evaluation.reference.cifar10.set" in {
        e["key"] for e in fidelity_record(config, "cifar10", "score")
    }
    iterations = next(s for s in SWITCHES if s.key == "training.iterations")
    assert iterations.is_followed(80_000) and not iterations.is_followed(300)


def _filled_buffer(relabel: bool) -> ReplayBuffer:
    buffer = ReplayBuffer(32, (1, 2, 2), relabel=relabel)
    buffer.push(torch.rand(32, 1, 2, 2), torch.full((32,), 7))
    return buffer


@pytest.mark.parametrize("relabel", [True, False])
def test_relabel_gives_replayed_chains_the_batch_labels(relabel):
    batch_labels = torch.arange(8) % 3  # never 7, the label every stored chain was sampled for
    _, labels = _filled_buffer(relabel).chain_starts(
        batch_labels, 8, reinit_prob=0.0, generator=torch.Generator().manual_seed(0)
    )
    assert torch.equal(labels, batch_labels) if relabel else bool((labels == 7).all())


def test_original_quantisation_stores_floor_255x():
    x = torch.tensor([0.0, 0.5, 0.999, 1.0]).reshape(4, 1, 1, 1)
    for original, expected in ((True, [0, 127, 254, 255]), (False, [0, 128, 255, 255])):
        buffer = ReplayBuffer(4, (1, 1, 1), original_quantisation=original)
        buffer.push(x, None)
        assert buffer.images.flatten().tolist() == expected


def _record(path: Path, method: str, fidelity: list[dict], **extra) -> Path:
    path.write_text(json.dumps({"dataset": "cifar10", "method": method, "divergence": "kl", "seed": 0,
                                "fidelity": fidelity, **extra}))  # fmt: skip
    return path


def test_report_lists_each_switch_with_the_runs_of_each_value(tmp_path):
    paper, fast = validate({}), load_config([REPO / "config" / "config.yaml", REPO / "config" / "fast.yaml"])
    files = [
        _record(tmp_path / "a.json", "febm", fidelity_record(paper, "cifar10", "train", "febm")),
        _record(tmp_path / "b.json", "cd", fidelity_record(fast, "cifar10", "train", "cd")),
        _record(tmp_path / "c.json", "febm", fidelity_record(paper, "cifar10", "sample"), kind="samples"),
        _record(tmp_path / "toy.json", "febm", [], study="toy"),
    ]
    (section,) = fidelity_sections(files)
    rows = {row.key: row for row in section.rows}
    relabel = rows["images.cifar10.replay.relabel"]
    assert [(v.text, v.follows_original, v.runs) for v in relabel.values] == [
        ("false", False, ["cd/kl/seed0"]),  # runs in name order
        ("true", True, ["febm/kl/seed0"]),
    ]
    assert not relabel.all_follow and section.deviations == 2  # relabel and quantisation (cd: one run)
    assert rows["images.cifar10.training.second_sampler_run"].values[0].runs == ["febm/kl/seed0"]
    assert (
        rows["evaluation.protocol"].all_follow
        and next(iter(rows)) == "images.cifar10.training.second_sampler_run"
    )
