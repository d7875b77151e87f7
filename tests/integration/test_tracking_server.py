"""Training and evaluation against a real `mlflow server` on 127.0.0.1, as a team shares one."""

import sys
from pathlib import Path

import pytest
from mlflow import MlflowClient

from tests.conftest import MlflowServer, run

pytestmark = pytest.mark.slow


def test_train_and_evaluate_log_one_run_to_the_server(project: Path, mlflow_server: MlflowServer):
    server = mlflow_server.uri
    run([sys.executable, "pipelines/prepare.py"], project)
    for script in ("train", "evaluate"):
        run(
            [
                sys.executable,
                f"pipelines/{script}.py",
                f"tracking.uri={server}",
                "trainer.max_epochs=2",
            ],
            project,
        )
    client = MlflowClient(tracking_uri=server)
    (found,) = client.search_runs([client.get_experiment_by_name("dlpipe").experiment_id])
    assert found.info.status == "FINISHED"
    assert {"val/acc", "train/loss", "test/acc"} <= set(found.data.metrics)
    artifacts = {a.path for a in client.list_artifacts(found.info.run_id, "plots")}
    assert artifacts == {"plots/confusion.png", "plots/learning_curves.png"}
    assert not (project / "mlflow.db").exists()  # nothing went to the local default store
