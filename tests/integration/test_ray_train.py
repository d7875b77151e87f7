"""Training under Ray Train on a real Ray cluster started here, as a user would run it."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from mlflow import MlflowClient

from tests.conftest import BIN_DIR, free_port, git_env, make_project, run
from tests.integration.test_plugins import add_own_model

pytestmark = pytest.mark.slow
_HEADS: dict[str, subprocess.Popen] = {}  # `ray start --head` by its cluster's address


@pytest.fixture(scope="module")
def head() -> str:
    """A Ray cluster of 3 CPUs on 127.0.0.1 (`ray start --head`), stopped afterwards: 2
    for the training workers, 1 for Ray Data to read shards with (more logical CPUs than
    the machine's 2 cores, as the workers mostly wait on each other)."""
    port = free_port()
    process = subprocess.Popen(
        [
            str(BIN_DIR / "ray"),
            "start",
            "--head",
            "--block",
            f"--port={port}",
            "--node-ip-address=127.0.0.1",
            "--num-cpus=3",
            "--dashboard-host=127.0.0.1",
            f"--dashboard-port={free_port()}",
        ],
        env=git_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    address = f"127.0.0.1:{port}"
    _HEADS[address] = process
    try:
        _wait_for_port(port, process)
        yield address
    finally:
        # The whole cluster is this process group; a graceful stop takes half a minute.
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=60)


def _wait_for_port(port: int, process: subprocess.Popen, seconds: float = 60) -> None:
    import socket

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert process.poll() is None, "ray start --head exited"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"no Ray head on port {port} after {seconds} s")


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    return make_project(tmp_path_factory.mktemp("ray") / "project")


def _client(project: Path) -> MlflowClient:
    return MlflowClient(tracking_uri=f"sqlite:///{project / 'mlflow.db'}")


def _runs(client: MlflowClient, where: str) -> list:
    experiment = client.get_experiment_by_name("dlpipe")
    return client.search_runs([experiment.experiment_id], where) if experiment else []


def _running_run(client: MlflowClient, seconds: float = 120):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        running = _runs(client, "attributes.status = 'RUNNING'")
        if running:
            return running[0]
        time.sleep(0.5)
    raise AssertionError(f"no RUNNING run after {seconds} s")


def _epochs_logged(client: MlflowClient, run_id: str) -> int:
    return len(client.get_metric_history(run_id, "val/acc"))


def _train_worker(head: str) -> psutil.Process:
    """One of the Ray Train worker processes of the cluster at `head` (not another test's)."""
    for process in psutil.Process(_HEADS[head].pid).children(recursive=True):
        if any("RayTrainWorker" in part for part in process.cmdline()):
            return process
    raise AssertionError("no RayTrainWorker process")


def test_dvc_experiment_on_ray_survives_a_killed_worker(project, head, tmp_path):
    """`dvc exp run -S cluster=ray` of the README's own model (tests/integration/
    test_plugins.py): 2 DDP workers build it from the user's package, shipped to them; one
    is killed mid-run and resumed from the checkpoint into the same MLflow run, then
    evaluate, as in any experiment."""
    add_own_model(project)
    epochs = 8
    settings = [
        "model=my_net",
        "cluster=ray",
        f"cluster.address={head}",
        "cluster.num_workers=2",
        "cluster.max_failures=1",
        f"trainer.max_epochs={epochs}",
        f"trainer.early_stopping.patience={epochs}",
    ]
    command = [str(BIN_DIR / "dvc"), "exp", "run", *(f"-S{s}" for s in settings)]
    log = tmp_path / "exp.log"
    with open(log, "w") as output:  # a file, not a pipe: Ray's logs would fill a pipe
        experiment = subprocess.Popen(
            command, cwd=project, env=git_env(), stdout=output, stderr=subprocess.STDOUT
        )
        client = _client(project)
        run_id = _running_run(client).info.run_id
        deadline = time.monotonic() + 180
        while _epochs_logged(client, run_id) < 2:
            assert experiment.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        _train_worker(head).kill()  # SIGKILL: no clean-up, as when a node is lost
        experiment.wait(timeout=400)
    said = log.read_text()
    assert experiment.returncode == 0, said
    assert "RETRY" in said  # Ray restarted the worker group once,
    assert "resumes from" in said  # and it went on from the checkpoint

    finished = client.get_run(run_id)
    assert finished.info.status == "FINISHED"
    assert finished.data.params["cluster.num_workers"] == "2"
    assert finished.data.tags["dlpipe.torch_threads"] == "1"  # each worker's, one CPU each
    for key in ("val/acc", "val/loss", "train/loss"):
        steps = [metric.step for metric in client.get_metric_history(run_id, key)]
        assert sorted(steps) == list(range(epochs)), key  # every epoch once: none lost or twice
    record = json.loads((project / "models/run.json").read_text())
    assert record["run_id"] == run_id
    assert record["model"]["_target_"] == "mypkg.nets.MyNet"
    history = json.loads((project / "models/history.json").read_text())
    assert [row["epoch"] for row in history] == list(range(epochs))
    assert record["best_score"] == max(row["val/acc"] for row in history)
    # The evaluate stage ran on the Ray-trained model, into the same run.
    metrics = json.loads((project / "reports/metrics.json").read_text())
    assert metrics["test/acc"] > 0.9
    assert client.get_run(run_id).data.metrics["test/acc"] == metrics["test/acc"]


def test_unreachable_cluster_fails_fast_without_a_run(project):
    run([sys.executable, "pipelines/prepare.py"], project)
    port = free_port()
    started = time.monotonic()
    done = run(
        [
            sys.executable,
            "pipelines/train.py",
            "cluster=ray",
            f"cluster.address=127.0.0.1:{port}",
            "cluster.connect_timeout=2",
        ],
        project,
        check=False,
    )
    assert done.returncode == 2 and time.monotonic() - started < 60
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith(
        f"error: cluster.address=127.0.0.1:{port}: no Ray cluster answers at 127.0.0.1:{port} "
        "within 2 s"
    )
    assert "ray start --head" in line
    assert _runs(_client(project), f"params.`cluster.address` = '127.0.0.1:{port}'") == []


def test_workers_that_leave_ray_data_no_cpu_are_refused(head, tmp_path_factory):
    """Images prepared in shards are read by the workers through Ray Data, with the CPUs the
    workers leave free: with none left, one line, not a hang. (The training through Ray
    Data is tests/integration/test_cluster.py's, on several hosts.)"""
    from tests.unit.test_shards import SHARDED, write_images

    folder = tmp_path_factory.mktemp("ray-shards")
    project = make_project(folder / "project")
    images = write_images(folder / "images", per_class=40, size=(12, 12))
    data = ["data=images", f"data.path={images}", *SHARDED]
    run([sys.executable, "pipelines/prepare.py", *data], project)
    settings = ["cluster=ray", f"cluster.address={head}", "cluster.num_workers=3"]
    train = [sys.executable, "pipelines/train.py", *data, "model=cnn", *settings]
    crowded = run(train, project, check=False)
    # Ray's own lines on joining the cluster come first; then the one error, no traceback.
    said = crowded.stderr.strip().splitlines()
    assert crowded.returncode == 2 and "Traceback" not in crowded.stderr
    assert said[-1].startswith("error: cluster.num_workers=3 workers")
    assert "leaving none for Ray Data" in said[-1]
    assert not _runs(_client(project), "attributes.status = 'RUNNING'")


def test_a_language_model_trains_on_a_local_ray(head, tmp_path_factory):
    """A GPT on a text file under Ray Train on the laptop default, a Ray cluster the
    training starts (beside another on this machine, the module's): token ids reach the
    workers, the epoch's bits per character and text samples reach the run."""
    from tests.integration.test_text import CORPUS, TINY_GPT, write_corpus

    project = make_project(tmp_path_factory.mktemp("ray-text") / "project")
    write_corpus(project / "corpus.txt")
    run([sys.executable, "pipelines/prepare.py", *CORPUS], project)
    settings = ["cluster=ray", "cluster.num_workers=2"]
    done = run(
        [
            sys.executable,
            "pipelines/train.py",
            *CORPUS,
            *TINY_GPT,
            "trainer.max_epochs=1",
            *settings,
        ],
        project,
    )
    said = done.stdout + done.stderr
    assert "training on a local Ray cluster with 2 workers" in said
    # Ray Train's placement-group cleaner asked this cluster's state API, not the other
    # cluster's: there, it would warn every second, or find no such training and remove
    # its workers' placement group.
    assert "State API may be temporarily unavailable" not in said
    assert "Found multiple active Ray instances" not in said
    run_id = json.loads((project / "models/run.json").read_text())["run_id"]
    client = _client(project)
    assert client.get_run(run_id).info.status == "FINISHED"
    assert [m.step for m in client.get_metric_history(run_id, "val/bpc")] == [0]
    samples = [item.path for item in client.list_artifacts(run_id, "samples")]
    assert samples == ["samples/epoch_001.txt"]
