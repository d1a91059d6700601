"""febm.checkpoints: newest-N states, fallback past damaged files, one settings key, the refusal policy."""

from __future__ import annotations

import pytest
import torch

from febm import checkpoints
from febm.checkpoints import CheckpointError, CheckpointSettingsError

KEY = "a1b2c3d4e5f6"


def save(folder, iteration, rank=0, key=KEY, **extra):
    state = {"weights": torch.full((3,), float(iteration)), **extra}
    return checkpoints.save_state(folder, iteration, state, key, rank)


def test_newest_n_are_kept_and_the_newest_is_loaded(tmp_path):
    for iteration in (10, 20, 30, 40):
        save(tmp_path, iteration)
        checkpoints.prune_states(tmp_path, keep=3)
    assert checkpoints.saved_iterations(tmp_path) == [40, 30, 20]
    iteration, state = checkpoints.load_newest(tmp_path, KEY)
    assert iteration == 40 and torch.equal(state["weights"], torch.full((3,), 40.0))
    assert state["settings_key"] == KEY and state["iteration"] == 40
    with pytest.raises(ValueError, match="at least 2"):
        checkpoints.prune_states(tmp_path, keep=1)
    with pytest.raises(ValueError, match="reserved"):
        checkpoints.save_state(tmp_path, 50, {"iteration": 50}, KEY)


def test_an_empty_or_missing_folder_is_a_fresh_run(tmp_path):
    assert checkpoints.load_newest(tmp_path / "absent", KEY) is None
    assert checkpoints.load_newest(tmp_path, KEY) is None


def test_damaged_newer_files_fall_back_with_a_warning_and_are_set_aside(tmp_path, capsys):
    for iteration in (10, 20, 30):
        save(tmp_path, iteration)
    truncated = checkpoints.state_path(tmp_path, 30)
    truncated.write_bytes(truncated.read_bytes()[:500])
    foreign = checkpoints.state_path(tmp_path, 20)
    torch.save({"something": "else"}, foreign)  # readable, but not a training state
    iteration, state = checkpoints.load_newest(tmp_path, KEY, what="febm test")
    assert iteration == 10 and torch.equal(state["weights"], torch.full((3,), 10.0))
    warnings = [line for line in capsys.readouterr().err.splitlines() if line]
    assert len(warnings) == 2 and all(line.startswith("febm test: warning: ") for line in warnings)
    assert "unreadable" in warnings[0] and "not a febm training state" in warnings[1]
    assert checkpoints.saved_iterations(tmp_path) == [10]
    assert (tmp_path / (truncated.name + ".damaged")).is_file() and (
        tmp_path / (foreign.name + ".damaged")
    ).is_file()


def test_every_file_damaged_is_an_error_naming_the_folder(tmp_path):
    for iteration in (10, 20):
        path = save(tmp_path, iteration)
        path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(CheckpointError, match=r"no readable training state in .*delete that folder"):
        checkpoints.load_newest(tmp_path, KEY)
    assert checkpoints.saved_iterations(tmp_path) == [20, 10]  # nothing renamed or deleted


def test_a_state_of_other_settings_is_refused_not_resumed_or_deleted(tmp_path):
    save(tmp_path, 10)
    save(tmp_path, 20, key="ffffffffffff")  # e.g. copied in by hand from another run's folder
    with pytest.raises(CheckpointSettingsError) as caught:
        checkpoints.load_newest(tmp_path, KEY, other_folder="--checkpoint-dir")
    message = str(caught.value)
    assert "\n" not in message and str(tmp_path) in message and "'ffffffffffff'" in message
    assert message.endswith("use another --checkpoint-dir or delete that folder")
    assert checkpoints.saved_iterations(tmp_path) == [20, 10]


def test_each_rank_reads_its_own_part_and_rank_zeros_shared_part(tmp_path):
    save(tmp_path, 4, rank=0, shared=torch.tensor([1.0]), own=torch.tensor([0.0]))
    save(tmp_path, 4, rank=1, own=torch.tensor([7.0]))
    iteration, state = checkpoints.load_newest(tmp_path, KEY, rank=1, shared_keys=("shared",))
    assert iteration == 4 and state["rank"] == 1
    assert torch.equal(state["own"], torch.tensor([7.0])) and torch.equal(
        state["shared"], torch.tensor([1.0])
    )
    # Rank 0's file damaged: rank 1 cannot resume that iteration, but leaves rank 0's file alone.
    save(tmp_path, 2, rank=0, shared=torch.tensor([0.5]))
    save(tmp_path, 2, rank=1)
    checkpoints.state_path(tmp_path, 4, 0).write_bytes(b"cut")
    assert checkpoints.load_newest(tmp_path, KEY, rank=1, shared_keys=("shared",))[0] == 2
    assert checkpoints.state_path(tmp_path, 4, 0).is_file()  # rank 0 sets its own file aside


def test_image_states_written_before_the_merge_still_resume(tmp_path):
    legacy = {"format": "febm-image-train-state/1", "iteration": 6, "rank": 0, "settings_key": KEY}
    torch.save({**legacy, "energy": {"w": torch.ones(2)}, "replay": {}}, checkpoints.state_path(tmp_path, 6))
    iteration, state = checkpoints.load_newest(tmp_path, KEY, shared_keys=("energy",))
    assert iteration == 6 and torch.equal(state["energy"]["w"], torch.ones(2))
