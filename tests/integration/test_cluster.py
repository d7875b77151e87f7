"""A cluster of several hosts: a Ray head and two worker hosts (network namespaces on one
bridge), one `mlflow server` on PostgreSQL serving the artifacts, Optuna's study on the
same PostgreSQL, checkpoints in a folder every host reaches; training and a search run from
the head as a user would, and a worker host lost mid-training."""

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import optuna
import pytest
from mlflow import MlflowClient

from tests.conftest import BIN_DIR, MlflowServer, free_port, make_project, run
from tests.hosts import Hosts, RayCluster, can_make_hosts, ray_env
from tests.postgres import Postgres
from tests.unit.test_shards import write_images

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not can_make_hosts(), reason="hosts are network namespaces: needs root"),
]
HEAD, WORKERS = 0, (1, 2)


@dataclass
class Site:
    hosts: Hosts
    postgres: Postgres
    tracking: MlflowServer
    ray: RayCluster
    project: Path
    data: list[str]


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Iterator[Site]:
    """Everything up once for the module; each piece stopped by its own id, whatever
    happened."""
    folder = tmp_path_factory.mktemp("cluster")
    with ExitStack() as stack:
        hosts = Hosts(3)
        stack.callback(hosts.down)
        hosts.up()
        postgres = Postgres(free_port(), host=hosts.gateway)
        stack.callback(postgres.stop)
        postgres.start()
        tracking = MlflowServer(folder / "mlflow", postgres.create("mlflow"), hosts.gateway)
        tracking.start()
        stack.callback(tracking.stop)
        # Two logical CPUs a worker host: one for a training worker, one for Ray Data.
        ray = RayCluster(hosts, folder, cpus=2)
        ray.start()
        project = make_project(folder / "project")
        images = write_images(folder / "images", per_class=80, size=(12, 12))
        # A few shards a split (each a Ray Data read task), so each worker reads several.
        shards = ["data.shards.above_mb=0", "data.shards.size_mb=0.02", "data.stream.workers=2"]
        data = ["data=images", f"data.path={images}", *shards]
        run([sys.executable, "pipelines/prepare.py", *data], project)
        yield Site(hosts, postgres, tracking, ray, project, data)


def _training(site: Site, project: Path, *settings: str) -> list[str]:
    """`pipelines/train.py` on the cluster, tracked to the shared server."""
    return [
        BIN_DIR / "python",
        "pipelines/train.py",
        "model=cnn",
        "cluster=ray",
        f"cluster.address={site.ray.address}",
        "cluster.placement_strategy=SPREAD",
        f"cluster.storage_path={project.parent / 'checkpoints'}",
        f"tracking.uri={site.tracking.uri}",
        *settings,
    ]


def _on_head(site: Site, cmd: list, project: Path | None = None, **env: str):
    """Run `cmd` on the head host, in the project, to a clean end."""
    cwd = project or site.project
    done = site.hosts.run(HEAD, cmd, cwd=cwd, env=ray_env(**env), timeout=900)
    assert done.returncode == 0, f"{cmd} exited {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done


def _client(site: Site) -> MlflowClient:
    return MlflowClient(tracking_uri=site.tracking.uri)


def _epochs(client: MlflowClient, run_id: str) -> list[int]:
    return [m.step for m in client.get_metric_history(run_id, "val/acc")]


def _worker_hosts(site: Site, run) -> list[str]:
    """The addresses of the hosts the run's Ray Train workers ran on."""
    tags = run.data.tags
    return [tags[key].split()[0] for key in sorted(tags) if key.startswith("ray.worker.")]


def test_training_spans_two_hosts_and_is_read_back_from_the_server(site: Site):
    training = _training(site, site.project, *site.data, "cluster.num_workers=2")
    # One epoch: under Ray Data, each epoch's reading of even these tiny shards takes seconds.
    trained = _on_head(site, [*training, "trainer.max_epochs=1"])
    said = trained.stdout + trained.stderr
    assert "ReadFiles" in said  # Ray Data read the shards
    # The small validation set once, before the first epoch, not by each worker each epoch.
    assert "validation set (0.0 MB) read once and kept in Ray's object store" in said
    _on_head(
        site, [BIN_DIR / "python", "pipelines/evaluate.py", f"tracking.uri={site.tracking.uri}"]
    )
    client = _client(site)
    run_id = json.loads((site.project / "models/run.json").read_text())["run_id"]
    trained = client.get_run(run_id)
    assert trained.info.status == "FINISHED"
    assert sorted(_worker_hosts(site, trained)) == [site.hosts.address(h) for h in WORKERS]
    assert _epochs(client, run_id) == [0]
    assert trained.data.metrics["test/acc"] >= 0.9
    assert trained.info.artifact_uri.startswith("mlflow-artifacts:")  # served, not a path
    assert "plots/confusion.png" in {a.path for a in client.list_artifacts(run_id, "plots")}
    registered = client.search_model_versions(f"run_id = '{run_id}'")
    assert [version.run_id for version in registered] == [run_id]  # the registry, there too
    # The command's views of the shared server, from a host of the cluster.
    tracked = f"tracking.uri={site.tracking.uri}"
    listed = _on_head(site, [BIN_DIR / "dlpipe", "runs", tracked])
    assert run_id[:8] in listed.stdout
    compared = _on_head(site, [BIN_DIR / "dlpipe", "compare", run_id, run_id, tracked])
    assert "test/acc" in compared.stdout


# Where a search's trials run: on the Hydra runner through the Ray launcher, spread over
# the hosts (the killed and resumed search below), or on Ray Tune.
LAUNCHER = ["hydra/launcher=dlpipe_ray", "hydra.launcher.ray.remote.scheduling_strategy=SPREAD"]
TUNE = ["search.runner=ray"]


def _search(site: Site, study: str, storage: str, runner: list[str] = LAUNCHER) -> list:
    """A 6-trial search from the head, 2 trials at a time on the worker hosts."""
    return [
        BIN_DIR / "python",
        "pipelines/train.py",
        "-m",
        "search=digits",
        *site.data,
        *runner,
        "hydra.sweeper.n_jobs=2",
        f"search.study={study}",
        f"search.storage={storage}",
        "search.n_trials=6",
        "trainer.max_epochs=1",
        f"tracking.uri={site.tracking.uri}",
    ]


def _study_runs(site: Site, study: str) -> list:
    """The MLflow runs of the study's trials (not its parent runs)."""
    client = _client(site)
    runs = client.search_runs(
        [client.get_experiment_by_name("dlpipe").experiment_id],
        filter_string=f"tags.`optuna.study` = '{study}'",
    )
    return [r for r in runs if "optuna.trial" in r.data.tags]


def test_a_tune_search_runs_two_trials_at_once_on_two_hosts_in_one_study(site: Site):
    storage = site.postgres.create("cluster_tune")
    _on_head(site, _search(site, "cluster-tune", storage, TUNE), RAY_ADDRESS=site.ray.address)
    study = optuna.load_study(study_name="cluster-tune", storage=storage)
    assert sorted(t.number for t in study.get_trials(deepcopy=False)) == list(range(6))
    numbered = _study_runs(site, "cluster-tune")
    assert sorted(int(r.data.tags["optuna.trial"]) for r in numbered) == list(range(6))
    assert len({r.data.tags["mlflow.parentRunId"] for r in numbered}) == 1
    said = {r.info.status: r.data.tags.get("dlpipe.failure") for r in numbered}
    assert set(said) == {"FINISHED"}, said
    # Each trial trained on a worker host (the head has no CPUs for work), where Ray found
    # room.
    assert {r.data.tags["ray.node"] for r in numbered} <= _worker_addresses(site)


def _worker_addresses(site: Site) -> set[str]:
    return {site.hosts.address(h) for h in WORKERS}


def test_a_killed_search_resumes_to_exactly_its_trials(site: Site, tmp_path: Path):
    storage = site.postgres.create("resumed")
    search = _search(site, "resumed", storage)
    log = tmp_path / "search.log"
    first = site.hosts.start(
        HEAD, search, log, cwd=site.project, env=ray_env(RAY_ADDRESS=site.ray.address)
    )
    deadline = time.monotonic() + 300
    while _finished_trials(storage, "resumed") < 2:
        assert first.poll() is None, log.read_text()[-3000:]
        assert time.monotonic() < deadline, "2 trials not finished within 300 s"
        time.sleep(0.5)
    os.killpg(first.pid, signal.SIGKILL)  # the whole search: its driver, and so its jobs
    first.wait(timeout=60)
    assert _finished_trials(storage, "resumed") < 6  # it had more to do
    _on_head(site, search, RAY_ADDRESS=site.ray.address)
    trials = optuna.load_study(study_name="resumed", storage=storage).get_trials(deepcopy=False)
    assert sorted(t.number for t in trials) == list(range(6))  # each number once, 6 in all
    assert all(t.state.is_finished() for t in trials)
    client = _client(site)
    runs = client.search_runs(
        [client.get_experiment_by_name("dlpipe").experiment_id],
        filter_string="tags.`optuna.study` = 'resumed'",
    )
    assert "RUNNING" not in {r.info.status for r in runs}  # the killed search's, closed
    # The launcher spread the trials over both worker hosts (the head has no CPUs for work).
    finished = [r for r in _study_runs(site, "resumed") if r.info.status == "FINISHED"]
    assert {r.data.tags["ray.node"] for r in finished} == _worker_addresses(site)


def _finished_trials(storage: str, study: str) -> int:
    try:
        trials = optuna.load_study(study_name=study, storage=storage).get_trials(deepcopy=False)
    except KeyError:  # not created yet
        return 0
    return sum(t.state.is_finished() for t in trials)


def test_training_survives_losing_a_worker_host(site: Site, tmp_path: Path):
    """Elastic: the run goes on with what is left of the cluster, from its last checkpoint.
    (Digits in memory: the shards' reading is the first test's.)"""
    epochs = 6
    project = make_project(tmp_path / "project")
    _on_head(site, [BIN_DIR / "python", "pipelines/prepare.py"], project)
    log = tmp_path / "train.log"
    settings = ["cluster.num_workers=2", "cluster.min_workers=1", "cluster.max_failures=1"]
    training = site.hosts.start(
        HEAD,
        _training(site, project, *settings, f"trainer.max_epochs={epochs}"),
        log,
        cwd=project,
        env=ray_env(),
    )
    client = _client(site)
    run_id = _running_run(client, training, log)
    lost = _host_of_worker(site, client, run_id, rank=1)
    _wait_for_epochs(client, run_id, 2, training, log)
    site.hosts.kill(lost)
    site.hosts.cut(lost)
    try:
        assert training.wait(timeout=600) == 0, log.read_text()[-3000:]
    finally:
        site.hosts.mend(lost)
    trained = client.get_run(run_id)
    assert trained.info.status == "FINISHED"
    assert _epochs(client, run_id) == list(range(epochs))  # each epoch once
    # Restarted on the host that is left.
    survivor = next(site.hosts.address(h) for h in WORKERS if h != lost)
    assert set(_worker_hosts(site, trained)) == {survivor}
    said = log.read_text()
    assert "resumes from" in said
    experiment = client.get_experiment_by_name("dlpipe").experiment_id
    assert not client.search_runs([experiment], filter_string="attributes.status = 'RUNNING'")


def _running_run(client: MlflowClient, process: subprocess.Popen, log: Path, seconds=180) -> str:
    """The id of the run the training opened."""
    experiment = None
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert process.poll() is None, log.read_text()[-3000:]
        experiment = experiment or client.get_experiment_by_name("dlpipe")
        if experiment is not None:
            running = client.search_runs(
                [experiment.experiment_id], filter_string="attributes.status = 'RUNNING'"
            )
            if running:
                return running[0].info.run_id
        time.sleep(1)
    raise AssertionError(f"no run RUNNING within {seconds} s: {log.read_text()[-3000:]}")


def _host_of_worker(site: Site, client: MlflowClient, run_id: str, rank: int) -> int:
    """The host the run's worker `rank` runs on, once it has said."""
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        placed = client.get_run(run_id).data.tags.get(f"ray.worker.{rank}")
        if placed:
            address = placed.split()[0]
            return next(h for h in WORKERS if site.hosts.address(h) == address)
        time.sleep(1)
    raise AssertionError(f"worker {rank} of run {run_id} never said where it runs")


def _wait_for_epochs(client, run_id: str, epochs: int, process, log: Path, seconds=300) -> None:
    deadline = time.monotonic() + seconds
    while len(_epochs(client, run_id)) < epochs:
        assert process.poll() is None, log.read_text()[-3000:]
        assert time.monotonic() < deadline, f"{epochs} epochs not logged within {seconds} s"
        time.sleep(0.5)
