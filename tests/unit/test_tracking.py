"""MLflow runs end with the right status whatever happens, against a real sqlite store."""

import json
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from mlflow import MlflowClient

from dlpipe.errors import TrackingError
from dlpipe.tracking import client as tracking
from tests.conftest import free_port


@pytest.fixture
def client(tmp_path: Path) -> MlflowClient:
    return tracking.get_client(f"sqlite:///{tmp_path / 'mlflow.db'}")


def open_run(client: MlflowClient) -> str:
    run_id = tracking.open_run(client, "tests", {"t": "1"})
    tracking.log_params(client, run_id, {"optim.lr": 0.1, "model.channels": [1, 2]})
    return run_id


def test_run_gets_params_and_finishes(client):
    run_id = open_run(client)
    with tracking.closing_run(client, run_id):
        tracking.log_metrics(client, run_id, {"val/acc": 0.5}, step=3)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params == {"optim.lr": "0.1", "model.channels": "[1, 2]"}
    assert [(m.step, m.value) for m in client.get_metric_history(run_id, "val/acc")] == [(3, 0.5)]


def test_error_marks_run_failed_with_reason(client):
    run_id = open_run(client)
    with pytest.raises(RuntimeError), tracking.closing_run(client, run_id):
        raise RuntimeError("loss is nan\nsecond line")
    run = client.get_run(run_id)
    assert run.info.status == "FAILED"
    assert run.data.tags["dlpipe.failure"] == "RuntimeError: loss is nan"


def test_ctrl_c_marks_run_killed(client):
    run_id = open_run(client)
    with pytest.raises(KeyboardInterrupt), tracking.closing_run(client, run_id):
        raise KeyboardInterrupt
    assert client.get_run(run_id).info.status == "KILLED"


def test_artifacts_and_status_go_through_the_seam(client, tmp_path: Path):
    # What the rest of dlpipe asks of a run, without importing MLflow: files kept and
    # fetched back, its status, and None for a run the store does not hold.
    run_id = open_run(client)
    (tmp_path / "best.ckpt").write_text("weights")
    tracking.log_artifact(client, run_id, tmp_path / "best.ckpt", "checkpoints")
    tracking.log_text(client, run_id, "a: 1\n", "config.yaml")
    fetched = tmp_path / "fetched"
    fetched.mkdir()
    got = tracking.download_artifact(client, run_id, "checkpoints/best.ckpt", fetched)
    assert got.read_text() == "weights"
    assert (
        tracking.download_artifact(client, run_id, "config.yaml", fetched).read_text() == "a: 1\n"
    )
    assert tracking.run_status(client, run_id) == "RUNNING"
    assert tracking.run_status(client, "0" * 32) is None
    with pytest.raises(tracking.TrackingStoreError):
        tracking.download_artifact(client, "0" * 32, "config.yaml", fetched)


def test_unreachable_server_fails_fast_naming_it():
    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    with pytest.raises(TrackingError, match=f"tracking server {uri} is unreachable"):
        tracking.get_client(uri)


def test_sqlite_store_in_missing_folder_is_named(tmp_path: Path):
    with pytest.raises(TrackingError, match=r"folder .*nowhere does not exist"):
        tracking.get_client(f"sqlite:///{tmp_path / 'nowhere' / 'mlflow.db'}")


def test_uri_setting_beats_environment_beats_default(monkeypatch, tmp_path: Path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert tracking.resolve_uri(None) == f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert tracking.resolve_uri(None) == "http://127.0.0.1:5000"
    assert tracking.resolve_uri("sqlite:///x.db") == "sqlite:///x.db"


def test_queued_dvc_experiments_log_to_the_project_store(tmp_path: Path, monkeypatch):
    workspace = tmp_path / "project" / ".dvc" / "tmp" / "exps" / "tmp1234"
    workspace.mkdir(parents=True)
    monkeypatch.chdir(workspace)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert tracking.resolve_uri(None) == f"sqlite:///{tmp_path / 'project' / 'mlflow.db'}"


OPEN_AND_WAIT = """
import sys, time
from dlpipe.tracking import client as tracking
client = tracking.get_client(sys.argv[1])
print(tracking.open_run(client, "tests", {}), flush=True)
time.sleep(600)
"""


def run_in_other_process(uri: str) -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen(
        [sys.executable, "-c", OPEN_AND_WAIT, uri], stdout=subprocess.PIPE, text=True
    )
    return process, process.stdout.readline().strip()


def test_next_run_fails_runs_whose_process_was_killed(client):
    uri = client.tracking_uri
    killed, orphan = run_in_other_process(uri)
    alive, running = run_in_other_process(uri)
    try:
        killed.send_signal(signal.SIGKILL)
        killed.wait(timeout=30)
        assert client.get_run(orphan).info.status == "RUNNING"

        tracking.open_run(client, "tests", {})

        run = client.get_run(orphan)
        assert run.info.status == "FAILED"
        assert run.data.tags["dlpipe.failure"].startswith(f"its process ({killed.pid} on ")
        # A run whose process still works is left alone.
        assert client.get_run(running).info.status == "RUNNING"
    finally:
        alive.kill()
        alive.wait(timeout=30)


@pytest.mark.parametrize(
    ("data", "name", "source"),
    [
        ({"name": "digits"}, "digits", "data/prepared"),
        ({"name": "table", "path": "data/wine.csv"}, "wine", "data/wine.csv"),
    ],
)
def test_runs_name_the_data_that_trained_them(client, data, name, source):
    meta = {"name": data["name"], "data": data, "hash": "ab" * 32, "sizes": {"train": 7}}
    run_id = open_run(client)
    tracking.log_data_input(client, run_id, meta, Path("data/prepared"))
    (found,) = client.search_runs([client.get_run(run_id).info.experiment_id])
    (given,) = found.inputs.dataset_inputs
    assert given.dataset.name == name and given.dataset.digest == "ab" * 6
    assert json.loads(given.dataset.source)["uri"] == str(Path(source).resolve())
    assert {tag.key: tag.value for tag in given.tags} == {"mlflow.data.context": "training"}


def log_at_once(client: MlflowClient, runs: list[str], meta: dict) -> list[Exception]:
    """Log `meta` as the input of every run, all threads released together."""
    start = threading.Barrier(len(runs))
    errors = []

    def log_input(run_id: str) -> None:
        start.wait()
        try:
            tracking.log_data_input(client, run_id, meta, Path("data/prepared"))
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=log_input, args=(run_id,)) for run_id in runs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


def test_runs_logging_one_new_data_set_at_once_all_record_it(client):
    # Eight trainings that start together on new data each log it as their input: MLflow
    # inserts the data set once, and the others must still link to it, not fail.
    for round_ in range(6):
        meta = {"name": "digits", "data": {"name": "digits"}, "sizes": {"train": 7}}
        meta["hash"] = f"{round_:02d}" * 32
        runs = [open_run(client) for _ in range(8)]
        errors = log_at_once(client, runs, meta)
        assert not errors, errors[0]
        for run_id in runs:
            (given,) = client.get_run(run_id).inputs.dataset_inputs
            assert given.dataset.digest == f"{round_:02d}" * 6
