"""kill -9 in the middle of a training, then the same command again: nothing is lost.

The resumed training continues the same MLflow run from models/last.ckpt, and its
metrics equal those of an uninterrupted training with the same seed, bit for bit.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from mlflow import MlflowClient

from tests.conftest import BIN_DIR, git_env, make_project, run, start_until

pytestmark = pytest.mark.slow

EPOCHS = 6
# The settings DVC runs with, changed in params.yaml: small batches make an epoch long
# enough (about a second) to be killed in its middle.
SETTINGS = {
    "max_epochs: 40": f"max_epochs: {EPOCHS}",
    "patience: 8": f"patience: {EPOCHS}",
    "batch_size: 32": "batch_size: 8",
}
REPRO = [BIN_DIR / "dvc", "repro"]
# The same training as the train stage, run directly.
TRAIN = [sys.executable, "pipelines/train.py", "--config-dir", ".", "--config-name", "params"]


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> Path:
    project = make_project(tmp_path_factory.mktemp("prepared") / "project")
    params = project / "params.yaml"
    text = params.read_text()
    for old, new in SETTINGS.items():
        assert old in text
        text = text.replace(old, new)
    params.write_text(text)
    run([*REPRO, "prepare"], project)
    return project


@pytest.fixture(scope="module")
def uninterrupted(prepared: Path, tmp_path_factory) -> Path:
    """The same training, never interrupted: what a resumed one must equal."""
    project = tmp_path_factory.mktemp("uninterrupted") / "project"
    shutil.copytree(prepared, project)
    run([*REPRO, "train"], project)
    return project


@pytest.fixture
def project(prepared: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "project"
    shutil.copytree(prepared, copy)
    return copy


def client_for(project: Path) -> MlflowClient:
    return MlflowClient(tracking_uri=f"sqlite:///{project / 'mlflow.db'}")


def only_run(project: Path):
    (found,) = client_for(project).search_runs(["0", "1"], max_results=10)
    return found


def kill_during_epoch(command: list, project: Path, epoch: int) -> None:
    """Start `command` and SIGKILL it, with all it started, once epoch `epoch` has ended."""
    process = start_until(command, project, f"epoch {epoch}/{EPOCHS}", start_new_session=True)
    os.killpg(process.pid, signal.SIGKILL)
    process.communicate(timeout=60)
    assert process.returncode == -signal.SIGKILL


def history(project: Path) -> list[dict]:
    return json.loads((project / "models" / "history.json").read_text())


def weights(checkpoint: Path) -> dict[str, torch.Tensor]:
    return torch.load(checkpoint, map_location="cpu", weights_only=True)["state_dict"]


def test_killed_repro_resumes_into_its_run_with_identical_metrics(uninterrupted, project):
    """The whole `dvc repro` killed (DVC and the training) mid-epoch, then run again."""
    kill_during_epoch(REPRO, project, 2)
    killed = only_run(project)
    assert killed.info.status == "RUNNING"  # nothing could close it
    record = json.loads((project / "models" / "resume.json").read_text())
    assert record["run_id"] == killed.info.run_id

    done = run(REPRO, project)

    output = done.stdout + done.stderr
    assert f"resuming run {killed.info.run_id} from models/last.ckpt after epoch 2" in output
    resumed = only_run(project)
    assert resumed.info.run_id == killed.info.run_id and resumed.info.status == "FINISHED"
    assert "test/acc" in resumed.data.metrics  # and evaluate scored it
    client = client_for(project)
    for key in ("train/loss", "val/loss", "val/acc"):
        steps = [m.step for m in client.get_metric_history(resumed.info.run_id, key)]
        assert sorted(steps) == list(range(EPOCHS)), key  # every epoch, once
    assert history(project) == history(uninterrupted)
    ours, theirs = (
        weights(project / "models/best.ckpt"),
        weights(uninterrupted / "models/best.ckpt"),
    )
    assert ours.keys() == theirs.keys()
    assert all(torch.equal(ours[key], theirs[key]) for key in ours)
    assert not (project / "models" / "resume.json").exists()


def test_stale_run_is_failed_then_resume_false_starts_anew(uninterrupted, project):
    kill_during_epoch(TRAIN, project, 1)
    killed = only_run(project).info.run_id

    listing = subprocess.run(
        [BIN_DIR / "dlpipe", "runs", "--stale"],
        cwd=project,
        env=git_env(),  # the project's own store, whatever MLFLOW_TRACKING_URI says here
        capture_output=True,
        text=True,
    )

    assert listing.returncode == 0, listing.stderr
    assert f"1 stale run(s) marked FAILED: {killed}" in listing.stdout
    assert f"{killed}  FAILED" in listing.stdout
    stale = client_for(project).get_run(killed)
    assert stale.info.status == "FAILED"
    assert "ended without closing it" in stale.data.tags["dlpipe.failure"]

    done = run([*TRAIN, "resume=false"], project)

    assert "resuming" not in done.stdout + done.stderr
    runs = client_for(project).search_runs(["0", "1"])
    fresh = [r for r in runs if r.info.run_id != killed]
    assert len(runs) == 2 and fresh[0].info.status == "FINISHED"
    assert client_for(project).get_run(killed).info.status == "FAILED"
    # Determinism: the same config and seed give the same metrics, epoch by epoch.
    assert history(project) == history(uninterrupted)


def test_a_training_killed_before_its_first_checkpoint_does_not_continue_another(project):
    """A finished training leaves its last.ckpt; a new one killed before saving its own
    must, run again, start anew rather than continue the first one's weights."""
    run([*TRAIN, "trainer.max_epochs=2"], project)
    (first,) = client_for(project).search_runs(["0", "1"])
    longer = [*TRAIN, "trainer.max_epochs=4"]
    killed = start_until(longer, project, "MLflow run", start_new_session=True)
    os.killpg(killed.pid, signal.SIGKILL)
    killed.communicate(timeout=60)
    record = json.loads((project / "models" / "resume.json").read_text())
    assert record["run_id"] != first.info.run_id
    assert torch.load(project / "models/last.ckpt", weights_only=True)["epoch"] == 1  # the first's

    done = run(longer, project)

    assert "resuming" not in done.stdout + done.stderr
    client = client_for(project)
    (fresh,) = [
        r
        for r in client.search_runs(["0", "1"])
        if r.info.run_id not in (first.info.run_id, record["run_id"])
    ]
    assert fresh.info.status == "FINISHED"
    steps = [m.step for m in client.get_metric_history(fresh.info.run_id, "train/loss")]
    assert sorted(steps) == [0, 1, 2, 3]


@pytest.fixture(scope="module")
def streamed(tmp_path_factory) -> tuple[Path, list[str]]:
    """A project with images prepared in shards, and the training command that streams
    them with 2 reading processes and augments them: small batches, so that an epoch is
    long enough to be killed in its middle."""
    from tests.unit.test_shards import SHARDED, write_images

    folder = tmp_path_factory.mktemp("streamed")
    project = make_project(folder / "project")
    images = write_images(folder / "images", per_class=80, size=(12, 12))
    data = ["data=images", f"data.path={images}", *SHARDED, "data.batch_size=4"]
    run([sys.executable, "pipelines/prepare.py", *data], project)
    settings = [
        "model=cnn",
        f"trainer.max_epochs={EPOCHS}",
        "trainer.early_stopping=null",
        "trainer.augment={flip: true, jitter: 0.2}",
    ]
    return project, [sys.executable, "pipelines/train.py", *data, *settings]


def test_streamed_training_killed_resumes_to_the_uninterrupted_weights(streamed, tmp_path):
    """Shuffled shards, reading processes and augmentation: resumed at an epoch's start,
    the epochs after it are those of a training never interrupted, bit for bit."""
    prepared, train = streamed
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    shutil.copytree(prepared, whole)
    shutil.copytree(prepared, killed)
    run(train, whole)

    kill_during_epoch(train, killed, 2)
    done = run(train, killed)

    assert "from models/last.ckpt after epoch 2" in done.stdout + done.stderr
    assert history(killed) == history(whole)
    ours, theirs = weights(killed / "models/last.ckpt"), weights(whole / "models/last.ckpt")
    assert all(torch.equal(ours[key], theirs[key]) for key in ours)
