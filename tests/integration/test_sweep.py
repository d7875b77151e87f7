"""Hydra multirun sweeps for real: one parent MLflow run, a child run per job, read back."""

import sys
from pathlib import Path

import pytest
from mlflow import MlflowClient

from tests.conftest import make_project, run

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
