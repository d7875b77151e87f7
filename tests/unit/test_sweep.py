"""A sweep's summary on its parent run, from its jobs' runs (stand-ins for MLflow's); where
a sweep's job works."""

from pathlib import Path
from types import SimpleNamespace

import pytest

from dlpipe.config.compose import enter_sweep_folder
from dlpipe.errors import ConfigError
from dlpipe.tracking.sweep import summarise


def job(status: str, watched: tuple[str, str] | None, **metrics: float) -> SimpleNamespace:
    params = {}
    if watched:
        params = {"trainer.checkpoint_monitor": watched[0], "trainer.checkpoint_mode": watched[1]}
    return SimpleNamespace(
        info=SimpleNamespace(status=status, run_id=f"run-{len(metrics)}-{status}"),
        data=SimpleNamespace(params=params, metrics=metrics),
    )


def test_best_job_is_best_on_the_metric_its_jobs_were_checkpointed_on():
    """The config may leave the monitor to the task: the jobs' runs name it, and its mode."""
    loss = ("val/loss", "min")
    jobs = [
        job("FINISHED", loss, **{"best/val/loss": 0.5}),
        job("FINISHED", loss, **{"best/val/loss": 0.2, "x": 1}),
        job("FAILED", None),
    ]
    summary = summarise(jobs)
    assert summary.best is jobs[1] and summary.metric == "best/val/loss"
    assert summary.counts == {"sweep/jobs": 3, "sweep/finished": 2, "sweep/failed": 1}


def test_jobs_checkpointed_on_different_metrics_have_no_best():
    jobs = [
        job("FINISHED", ("val/loss", "min"), **{"best/val/loss": 0.5}),
        job("FINISHED", ("val/acc", "max"), **{"best/val/acc": 0.9}),
    ]
    summary = summarise(jobs)
    assert summary.best is None and summary.counts["sweep/finished"] == 2


def test_a_job_sent_to_another_host_works_in_the_sweep_s_folder(tmp_path: Path, monkeypatch):
    """A Ray launcher's job starts in its node's own folder: it moves to the one the sweep
    started from, or says that host lacks it."""
    project = tmp_path / "project"
    project.mkdir()
    monkeypatch.chdir(tmp_path)
    enter_sweep_folder(project)
    assert Path.cwd() == project
    with pytest.raises(ConfigError, match=r"runs on a host without the project folder .*absent"):
        enter_sweep_folder(tmp_path / "absent")


def test_trial_runs_their_jobs_left_open_are_closed_by_study_and_number(tmp_path: Path):
    """A killed search's trials, or trials Tune stopped with their process, end with the
    status they earned; other studies' runs and closed runs are left as they are."""
    from mlflow import MlflowClient
    from omegaconf import OmegaConf

    from dlpipe.tracking.sweep import close_trial_runs

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    experiment = client.create_experiment("dlpipe")

    def trial_run(study: str, number: int, status: str = "RUNNING") -> str:
        tags = {"optuna.study": study, "optuna.trial": str(number)}
        run_id = client.create_run(experiment, tags=tags).info.run_id
        if status != "RUNNING":
            client.set_terminated(run_id, status)
        return run_id

    cut, stopped, other, done = (
        trial_run("s", 1),
        trial_run("s", 2),
        trial_run("t", 1),
        trial_run("s", 3, "FINISHED"),
    )
    config = OmegaConf.create(
        {"tracking": {"uri": uri, "experiment": "dlpipe"}, "search": {"study": "s"}}
    )
    close_trial_runs(config, [1, 3], "FAILED", "its search ended before the trial did")
    close_trial_runs(config, [2], "FINISHED")

    def status(run_id: str) -> tuple[str, dict]:
        run = client.get_run(run_id)
        return run.info.status, run.data.tags

    assert status(cut)[0] == "FAILED"
    assert status(cut)[1]["dlpipe.failure"] == "its search ended before the trial did"
    assert status(stopped)[0] == "FINISHED" and status(stopped)[1]["dlpipe.pruned"] == "true"
    assert status(other)[0] == "RUNNING"
    assert status(done)[0] == "FINISHED" and "dlpipe.failure" not in status(done)[1]
