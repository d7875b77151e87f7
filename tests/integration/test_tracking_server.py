"""Training and evaluation against a real `mlflow server` on 127.0.0.1, as a team shares one."""

import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow import MlflowClient

from tests.conftest import BIN_DIR, free_port, git_env, run

pytestmark = pytest.mark.slow


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    uri = f"http://127.0.0.1:{free_port()}"
    process = subprocess.Popen(
        [
            BIN_DIR / "mlflow",
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            uri.rsplit(":", 1)[1],
            "--backend-store-uri",
            f"sqlite:///{tmp_path / 'server.db'}",
            "--artifacts-destination",
            str(tmp_path / "artifacts"),
            "--workers",
            "1",
        ],
        env=git_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                urllib.request.urlopen(f"{uri}/health", timeout=2).close()
                break
            except OSError:
                assert process.poll() is None and time.monotonic() < deadline, (
                    "server did not start"
                )
                time.sleep(0.5)
        yield uri
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_train_and_evaluate_log_one_run_to_the_server(project: Path, server: str):
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
