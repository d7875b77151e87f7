"""The tracking server goes away in the middle of a training, for real: a short outage is
ridden out with every metric logged once; a server gone for good stops the training
within its retry bound, with one error line naming the server."""

import itertools
import sys
import time
from pathlib import Path

import pytest
from mlflow import MlflowClient

from tests.conftest import MlflowServer, run, start_until

pytestmark = pytest.mark.slow

EPOCHS = 8
# The server is killed once this many epochs are in its store.
KILL_AFTER = 2
# How long the server stays down before it starts again (starting takes seconds more).
DOWN_SECONDS = 3
# Small batches make an epoch last about a second, so the training is still going when the
# server is killed, and its next epoch ends while the server is down.
TRAIN = [
    sys.executable,
    "pipelines/train.py",
    f"trainer.max_epochs={EPOCHS}",
    f"trainer.early_stopping.patience={EPOCHS}",
    "data.batch_size=8",
]


@pytest.fixture
def prepared(project: Path) -> Path:
    run([sys.executable, "pipelines/prepare.py", "data.batch_size=8"], project)
    return project


def start_training(project: Path, server: MlflowServer, *overrides: str):
    """Start the training; return it and its run once epoch KILL_AFTER is in the store."""
    training = start_until(
        [*TRAIN, f"tracking.uri={server.uri}", *overrides], project, f"epoch {KILL_AFTER}/"
    )
    client = MlflowClient(tracking_uri=server.uri)
    (found,) = client.search_runs([client.get_experiment_by_name("dlpipe").experiment_id])
    steps = [m.step for m in client.get_metric_history(found.info.run_id, "train/loss")]
    assert KILL_AFTER - 1 in steps
    return training, found.info.run_id


def test_short_outage_is_ridden_out_and_loses_no_metric(
    prepared: Path, mlflow_server: MlflowServer
):
    training, run_id = start_training(prepared, mlflow_server)

    mlflow_server.stop()
    time.sleep(DOWN_SECONDS)
    mlflow_server.start()
    output, _ = training.communicate(timeout=300)

    assert training.returncode == 0, output
    client = MlflowClient(tracking_uri=mlflow_server.uri)
    finished = client.get_run(run_id)
    assert finished.info.status == "FINISHED"
    epoch_metrics = [key for key in finished.data.metrics if not key.startswith("best/")]
    assert {"train/loss", "train/acc", "val/loss", "val/acc"} <= set(epoch_metrics)
    for key in epoch_metrics:
        steps = [m.step for m in client.get_metric_history(run_id, key)]
        assert sorted(steps) == list(range(EPOCHS)), key  # every epoch, once
    # The training waited for the server rather than skipping epochs: two consecutive
    # epochs were logged at least the outage apart.
    stamps = sorted(m.timestamp for m in client.get_metric_history(run_id, "train/loss"))
    assert max(b - a for a, b in itertools.pairwise(stamps)) >= DOWN_SECONDS * 1000


def test_server_gone_for_good_stops_the_training_naming_it(
    prepared: Path, mlflow_server: MlflowServer
):
    training, run_id = start_training(prepared, mlflow_server, "tracking.retry_seconds=5")

    mlflow_server.stop()
    # The guard against a hang. It retries for 6 s (5, rounded up to the backoff's steps),
    # then tries once to close the run.
    output, _ = training.communicate(timeout=120)

    assert training.returncode == 2, output
    errors = [line for line in output.splitlines() if line.startswith("error: ")]
    assert errors == [output.strip().splitlines()[-1]], output  # one line, the last
    assert errors[0].startswith(f"error: tracking server {mlflow_server.uri} stopped answering")
    assert "no answer after retrying for 6 s (tracking.retry_seconds)" in errors[0]
    assert f"run {run_id} stays RUNNING there until the next training" in errors[0]
