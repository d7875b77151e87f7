"""Hydra multirun sweeps for real: one parent MLflow run, a child run per job, read back."""

import signal
import sys
from pathlib import Path

import pytest
from mlflow import MlflowClient

from tests.conftest import make_project, run, start_until

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def swept(tmp_path_factory) -> Path:
    project = make_project(tmp_path_factory.mktemp("sweep") / "project")
    run([sys.executable, "pipelines/prepare.py"], project)
    run(
        [
            sys.executable,
            "pipelines/train.py",
            "-m",
            "model=mlp,cnn",
            "optim.lr=1e-3,3e-3",
            "trainer.max_epochs=1",
        ],
        project,
    )
    return project


def runs_of(project: Path) -> tuple:
    client = MlflowClient(tracking_uri=f"sqlite:///{project / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("dlpipe").experiment_id
    every = client.search_runs([experiment])
    parents = [r for r in every if "dlpipe.sweep_dir" in r.data.tags]
    children = [r for r in every if "mlflow.parentRunId" in r.data.tags]
    return parents, children


def test_grid_sweep_is_one_parent_with_a_child_per_job(swept: Path):
    (parent,), children = runs_of(swept)
    assert len(children) == 4
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parent.info.run_id}
    assert {(c.data.params["model.name"], c.data.params["optim.lr"]) for c in children} == {
        ("mlp", "0.001"),
        ("mlp", "0.003"),
        ("cnn", "0.001"),
        ("cnn", "0.003"),
    }
    assert all(run.info.status == "FINISHED" for run in (parent, *children))
    assert parent.data.params["sweep.overrides"] == (
        "model=mlp,cnn optim.lr=1e-3,3e-3 trainer.max_epochs=1"
    )


def test_parent_carries_the_best_job_and_the_counts(swept: Path):
    (parent,), children = runs_of(swept)
    best = max(children, key=lambda run: run.data.metrics["best/val/acc"])
    assert parent.data.tags["dlpipe.best_run"] == best.info.run_id
    assert parent.data.metrics["best/val/acc"] == best.data.metrics["best/val/acc"]
    assert parent.data.params["best.model"] == best.data.params["model.name"]
    assert float(parent.data.params["best.optim.lr"]) == float(best.data.params["optim.lr"])
    assert parent.data.metrics["sweep/jobs"] == 4 and parent.data.metrics["sweep/failed"] == 0


def test_each_job_writes_its_own_models(swept: Path):
    checkpoints = sorted(swept.glob("multirun/*/*/*/models/best.ckpt"))
    assert [path.parent.parent.name for path in checkpoints] == ["0", "1", "2", "3"]
    assert not (swept / "models").exists()


def test_failing_jobs_are_failed_children_and_the_sweep_goes_on(tmp_path: Path):
    project = make_project(tmp_path / "project")
    run([sys.executable, "pipelines/prepare.py"], project)
    # lr 1e5 diverges in the first epoch; batch size 0 fails before training starts.
    done = run(
        [
            sys.executable,
            "pipelines/train.py",
            "-m",
            "optim=sgd",
            "optim.lr=0.05,1e5",
            "data.batch_size=32,0",
            "trainer.max_epochs=1",
        ],
        project,
        check=False,
    )
    assert done.returncode != 0  # as Hydra does: the sweep ran every job, then reports
    (parent,), children = runs_of(project)
    failures = {
        c.data.tags["dlpipe.overrides"]: (c.info.status, c.data.tags.get("dlpipe.failure"))
        for c in children
    }
    assert failures["optim=sgd optim.lr=0.05 data.batch_size=32 trainer.max_epochs=1"] == (
        "FINISHED",
        None,
    )
    status, reason = failures["optim=sgd optim.lr=100000.0 data.batch_size=32 trainer.max_epochs=1"]
    assert status == "FAILED"
    # The epoch's training metrics are checked first, as they are logged first.
    assert reason.startswith("TrainingError: train/loss became nan in epoch 1")
    for lr in ("0.05", "100000.0"):
        status, reason = failures[f"optim=sgd optim.lr={lr} data.batch_size=0 trainer.max_epochs=1"]
        assert (status, reason) == (
            "FAILED",
            "ConfigError: data.batch_size must be an integer > 0, got 0",
        )
    assert parent.info.status == "FINISHED"
    counts = {key: parent.data.metrics[f"sweep/{key}"] for key in ("jobs", "finished", "failed")}
    assert counts == {"jobs": 4, "finished": 1, "failed": 3}
    assert "3 of 4 jobs failed" in done.stdout  # Hydra logs to stdout


def test_killed_sweep_leaves_no_run_running_after_the_next_run(tmp_path: Path):
    project = make_project(tmp_path / "project")
    run([sys.executable, "pipelines/prepare.py"], project)
    sweep = [sys.executable, "pipelines/train.py", "-m", "model=mlp,cnn", "trainer.max_epochs=50"]
    process = start_until(sweep, project, "MLflow run ")
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    (parent,), (child,) = runs_of(project)
    assert parent.info.status == child.info.status == "RUNNING"

    run([sys.executable, "pipelines/train.py", "trainer.max_epochs=1"], project)

    for stale in (parent, child):
        after = MlflowClient(tracking_uri=f"sqlite:///{project / 'mlflow.db'}").get_run(
            stale.info.run_id
        )
        assert after.info.status == "FAILED"
        assert "ended without closing it" in after.data.tags["dlpipe.failure"]


def test_ray_launcher_runs_jobs_in_parallel_with_a_cpu_each(tmp_path: Path):
    project = make_project(tmp_path / "project")
    run([sys.executable, "pipelines/prepare.py"], project)
    run(
        [
            sys.executable,
            "pipelines/train.py",
            "-m",
            "hydra/launcher=dlpipe_ray",
            "model=mlp,cnn",
            "trainer.max_epochs=1",
        ],
        project,
        timeout=600,
    )
    (parent,), children = runs_of(project)
    assert len(children) == 2
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parent.info.run_id}
    assert all(run.info.status == "FINISHED" for run in (parent, *children))
    # Two jobs on two cores: one torch thread each rather than two fighting over both.
    assert [c.data.tags["dlpipe.torch_threads"] for c in children] == ["1", "1"]
    assert len(list(project.glob("multirun/*/*/*/models/best.ckpt"))) == 2
