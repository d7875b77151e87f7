"""Which interrupted training a new one continues, and the random state it carries over."""

import random
from pathlib import Path

import numpy as np
import pytest
import torch
from mlflow import MlflowClient

from dlpipe import files, resume, tracking
from dlpipe.errors import ConfigError, DataError
from dlpipe.paths import Outputs


@pytest.fixture
def client(tmp_path: Path) -> MlflowClient:
    return MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")


@pytest.fixture
def out(tmp_path: Path) -> Outputs:
    return Outputs(tmp_path / "job")


def interrupted_run(client: MlflowClient, out: Outputs, epoch: int = 2) -> str:
    """A run left RUNNING by a process that is gone, with a checkpoint of `epoch`."""
    run_id = tracking.open_run(client, "exp", {})
    client.set_tag(run_id, tracking.PID_TAG, "999999999")  # no such process
    resume.write_record(out, run_id, "config-hash", "data-hash")
    torch.save({"epoch": epoch, "state_dict": {"model.w": torch.zeros(1)}}, out.last_ckpt)
    return run_id


def test_an_interrupted_run_with_the_same_config_and_data_is_continued(client, out):
    run_id = interrupted_run(client, out, epoch=2)

    found = resume.find(client, out, "config-hash", "data-hash")

    assert found == resume.Resumption(run_id, out.last_ckpt, epochs_done=3)


@pytest.mark.parametrize("hashes", [("other", "data-hash"), ("config-hash", "other")])
def test_other_settings_or_data_start_anew(client, out, hashes):
    interrupted_run(client, out)
    assert resume.find(client, out, *hashes) is None


def test_a_finished_run_or_no_checkpoint_starts_anew(client, out):
    run_id = interrupted_run(client, out)
    out.last_ckpt.unlink()
    assert resume.find(client, out, "config-hash", "data-hash") is None
    torch.save({"epoch": 0}, out.last_ckpt)
    client.set_terminated(run_id, "FINISHED")
    assert resume.find(client, out, "config-hash", "data-hash") is None


def test_a_failed_or_killed_run_is_continued_and_reopened(client, out):
    run_id = interrupted_run(client, out)
    tracking.fail_orphans(client, client.get_run(run_id).info.experiment_id)
    assert client.get_run(run_id).info.status == "FAILED"

    found = resume.find(client, out, "config-hash", "data-hash")
    tracking.reopen_run(client, found.run_id)

    reopened = client.get_run(run_id)
    assert reopened.info.status == "RUNNING"
    assert tracking.FAILURE_TAG not in reopened.data.tags
    assert tracking.owner_alive(reopened.data.tags)  # this process now holds it


def test_a_run_still_training_in_the_same_folder_is_refused(client, out):
    run_id = tracking.open_run(client, "exp", {})  # owned by this live process
    resume.write_record(out, run_id, "config-hash", "data-hash")
    torch.save({"epoch": 0}, out.last_ckpt)

    with pytest.raises(ConfigError, match=f"run {run_id} is still training into"):
        resume.find(client, out, "config-hash", "data-hash")


def test_a_truncated_last_checkpoint_is_named(client, out):
    interrupted_run(client, out)
    out.last_ckpt.write_bytes(out.last_ckpt.read_bytes()[:40])

    with pytest.raises(DataError, match=r"last.ckpt is truncated .*resume=false"):
        resume.find(client, out, "config-hash", "data-hash")


def test_random_state_round_trips_through_a_weights_only_checkpoint(tmp_path):
    saver = resume.RandomState()
    path = tmp_path / "state.pt"
    torch.save(saver.state_dict(), path)
    expected = (random.random(), np.random.rand(), torch.rand(3))

    resume.RandomState().load_state_dict(torch.load(path, weights_only=True))

    assert (random.random(), np.random.rand()) == expected[:2]
    assert torch.equal(torch.rand(3), expected[2])


def test_a_checkpoint_write_killed_midway_leaves_the_previous_one(tmp_path, monkeypatch):
    path = tmp_path / "last.ckpt"
    writer = resume.AtomicCheckpointIO()
    writer.save_checkpoint({"epoch": 1}, path)

    def killed_midway(checkpoint, target):
        Path(target).write_bytes(b"PK\x03\x04 partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", killed_midway)
    with pytest.raises(KeyboardInterrupt):
        writer.save_checkpoint({"epoch": 2}, path)
    monkeypatch.undo()

    assert torch.load(path, weights_only=True) == {"epoch": 1}
    assert [leftover.name for leftover in tmp_path.iterdir()] == ["last.ckpt"]


def test_a_partial_file_left_by_a_kill_is_cleared(tmp_path):
    (tmp_path / ".best.ckpt.x1y2.tmp").write_bytes(b"partial")
    (tmp_path / "best.ckpt").write_bytes(b"whole")

    files.clear_partial(tmp_path)

    assert [kept.name for kept in tmp_path.iterdir()] == ["best.ckpt"]
