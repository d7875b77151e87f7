"""Eight trainings at once into one tracking store, for real: a sqlite file that none of them
finds there (whichever starts first creates it), and an `mlflow server`. Every run ends
FINISHED with every epoch's metrics, each logged once. And a second training into the
models/ folder that a live one writes is refused, whatever its settings."""

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow import MlflowClient

from tests.conftest import (
    MlflowServer,
    assert_one_line_error,
    git_env,
    make_project,
    run,
    start_until,
)

pytestmark = pytest.mark.slow

TRAININGS = 8
EPOCHS = 2
# The smallest training there is (one neuron on 200 numbers): the processes' start-up and
# their tracking calls, all at the same moments, are what is tested.
TRAIN = [
    sys.executable,
    "pipelines/train.py",
    "experiment=linear_perceptron",
    f"trainer.max_epochs={EPOCHS}",
]
EPOCH_METRICS = {"train/loss", "train/mae", "train/lr", "val/loss", "val/mae"}


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> Path:
    project = make_project(tmp_path_factory.mktemp("concurrent") / "project")
    run([sys.executable, "pipelines/prepare.py", "experiment=linear_perceptron"], project)
    return project


def clones(prepared: Path, folder: Path) -> list[Path]:
    """A copy of the prepared project per training: a training writes models/ at a fixed
    place in its working directory, so trainings sharing one would overwrite each other."""
    return [shutil.copytree(prepared, folder / f"clone{n}") for n in range(TRAININGS)]


def train_all_at_once(projects: list[Path], uri: str) -> None:
    trainings = [
        subprocess.Popen(
            [*TRAIN, f"tracking.uri={uri}"],
            cwd=project,
            env=git_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for project in projects
    ]
    outputs = [training.communicate(timeout=600)[0] for training in trainings]
    failed = [out for training, out in zip(trainings, outputs, strict=True) if training.returncode]
    assert not failed, f"{len(failed)} of {TRAININGS} failed; the first:\n{failed[0]}"


def assert_every_run_finished_with_every_epoch(uri: str) -> None:
    client = MlflowClient(tracking_uri=uri)
    runs = client.search_runs([client.get_experiment_by_name("dlpipe").experiment_id])
    assert len(runs) == TRAININGS
    for found in runs:
        assert found.info.status == "FINISHED", found.data.tags.get("dlpipe.failure")
        assert set(found.data.metrics) >= EPOCH_METRICS
        for key in EPOCH_METRICS:
            steps = [m.step for m in client.get_metric_history(found.info.run_id, key)]
            assert sorted(steps) == list(range(EPOCHS)), (found.info.run_id, key)


def test_eight_trainings_create_and_share_one_sqlite_store(prepared: Path, tmp_path: Path):
    uri = f"sqlite:///{tmp_path / 'shared.db'}"

    train_all_at_once(clones(prepared, tmp_path), uri)

    assert_every_run_finished_with_every_epoch(uri)


def test_eight_trainings_share_one_server(
    prepared: Path, tmp_path: Path, mlflow_server: MlflowServer
):
    train_all_at_once(clones(prepared, tmp_path), mlflow_server.uri)

    assert_every_run_finished_with_every_epoch(mlflow_server.uri)


def test_a_second_training_into_a_busy_folder_is_refused_until_the_first_dies(
    prepared: Path, tmp_path: Path
):
    project = shutil.copytree(prepared, tmp_path / "project")
    # Long enough to be still training while the second one starts.
    first = start_until(
        [*TRAIN[:3], "trainer.max_epochs=100000", "trainer.early_stopping.patience=100000"],
        project,
        "epoch 1/",
        start_new_session=True,
    )
    other = [*TRAIN[:3], "model=mlp", "trainer.max_epochs=2"]
    try:
        refused = run(other, project, check=False)
        record_file = project / "models" / "resume.json"
        record = json.loads(record_file.read_text()) if record_file.exists() else {}
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.communicate(timeout=60)

    assert_one_line_error(refused, "models/ is in use", f"process {first.pid},")
    client = MlflowClient(tracking_uri=f"sqlite:///{project / 'mlflow.db'}")
    (only,) = client.search_runs([client.get_experiment_by_name("dlpipe").experiment_id])
    assert record["run_id"] == only.info.run_id  # the first training's record, untouched
    # Its process killed with SIGKILL, the first training holds the folder no longer.
    run(other, project)
    runs = client.search_runs([only.info.experiment_id], order_by=["attributes.start_time DESC"])
    assert runs[0].data.params["model.name"] == "mlp" and runs[0].info.status == "FINISHED"
