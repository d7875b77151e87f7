"""Which interrupted training a new one continues, and the random state it carries over."""

import os
import random
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from mlflow import MlflowClient

from dlpipe import files
from dlpipe.errors import ConfigError, DataError
from dlpipe.paths import Outputs
from dlpipe.tracking import client as tracking
from dlpipe.training import resume
from tests.conftest import ROOT


@pytest.fixture
def client(tmp_path: Path) -> MlflowClient:
    return MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")


@pytest.fixture
def out(tmp_path: Path) -> Outputs:
    return Outputs(tmp_path / "job")


def save_checkpoint(path: Path, epoch: int, run_id: str | None) -> None:
    """A checkpoint of `epoch`, stamped by the run it names as a training would stamp it."""
    checkpoint = {"epoch": epoch, "state_dict": {"model.w": torch.zeros(1)}}
    resume.RunId().on_save_checkpoint(
        SimpleNamespace(logger=SimpleNamespace(version=run_id)), None, checkpoint
    )
    torch.save(checkpoint, path)


def interrupted_run(client: MlflowClient, out: Outputs, epoch: int = 2) -> str:
    """A run left RUNNING by a process that is gone, with a checkpoint of `epoch`."""
    run_id = tracking.open_run(client, "exp", {})
    client.set_tag(run_id, tracking.PID_TAG, "999999999")  # no such process
    resume.write_record(out, run_id, "config-hash", "data-hash")
    save_checkpoint(out.last_ckpt, epoch, run_id)
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


def test_a_checkpoint_of_another_run_is_not_continued(client, out):
    """A training killed before its first checkpoint finds the previous training's there."""
    finished = tracking.open_run(client, "exp", {})
    client.set_terminated(finished, "FINISHED")
    interrupted_run(client, out)
    save_checkpoint(out.last_ckpt, 1, finished)

    assert resume.find(client, out, "config-hash", "data-hash") is None


def test_a_checkpoint_naming_no_run_is_not_continued(client, out):
    interrupted_run(client, out)
    save_checkpoint(out.last_ckpt, 1, None)

    assert resume.find(client, out, "config-hash", "data-hash") is None


def test_a_folder_held_by_a_training_refuses_another_until_released(out):
    refused = pytest.raises(
        ConfigError, match=f"in use by process {os.getpid()}, which is training"
    )
    with resume.holding(out), refused, resume.holding(out):
        pass
    with resume.holding(out):  # released: the next training takes it
        assert out.lock_file.read_text() == str(os.getpid())
    assert out.lock_file.read_text() == ""


def test_dvc_leaves_the_lock_file_out_of_the_models_it_caches(tmp_path):
    """The lock must not change the hash under which DVC caches models/."""
    from dvc.repo import Repo

    Repo.init(str(tmp_path), no_scm=True)
    shutil.copy(ROOT / ".dvcignore", tmp_path / ".dvcignore")
    out = Outputs(tmp_path)
    with resume.holding(out):
        assert Repo(str(tmp_path)).dvcignore.is_ignored_file(str(out.lock_file))


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

    def killed_midway(target: Path, data) -> None:
        with open(target, "wb") as handle:
            handle.write(bytes(data)[:10])
        raise KeyboardInterrupt

    monkeypatch.setattr(Path, "write_bytes", killed_midway)
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
