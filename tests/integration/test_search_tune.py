"""Searches on Ray Tune (search.runner=ray), each on the local Ray cluster its command
starts: asynchronous trials stopped early by ASHA, a failing search that stops, a
multi-worker Ray Train trial, and a search resumed after its driver was SIGKILLed."""

import os
import signal
import sys
from pathlib import Path

import optuna
import psutil
import pytest
import yaml
from mlflow import MlflowClient

from tests.conftest import prepared_project, run, start_until
from tests.integration.test_search import trials

pytestmark = pytest.mark.slow

State = optuna.trial.TrialState


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    return prepared_project(tmp_path_factory.mktemp("tune") / "project")


def search(study: str, n_trials: int, *overrides: str, runner: str = "ray") -> list[str]:
    return [
        sys.executable,
        "pipelines/train.py",
        "-m",
        "search=digits",
        f"search.runner={runner}",
        f"search.study={study}",
        f"search.n_trials={n_trials}",
        "hydra.sweeper.n_jobs=2",
        "model=mlp",
        *overrides,
    ]


def client(project: Path) -> MlflowClient:
    return MlflowClient(tracking_uri=f"sqlite:///{project / 'mlflow.db'}")


def study_runs(project: Path, study: str) -> dict[int, object]:
    """The MLflow runs of a study's trials, by trial number."""
    found = client(project).search_runs(["1"], filter_string=f"tags.`optuna.study` = '{study}'")
    return {int(r.data.tags["optuna.trial"]): r for r in found if "optuna.trial" in r.data.tags}


def epochs_of(project: Path, run) -> int:
    return len(client(project).get_metric_history(run.info.run_id, "val/acc"))


def parent_of(project: Path, runs: dict) -> object:
    (parent,) = {r.data.tags["mlflow.parentRunId"] for r in runs.values()}
    return client(project).get_run(parent)


def test_asha_stops_trials_and_freed_slots_start_the_next_at_once(project: Path):
    run(search("asha", 6, "search.scheduler=asha", "trainer.max_epochs=5"), project)
    found = trials(project, "asha")
    assert [t.number for t in found] == list(range(6))
    pruned = {t.number for t in found if t.state == State.PRUNED}
    completed = [t for t in found if t.state == State.COMPLETE]
    assert pruned and completed, "ASHA stopped no trial, or every trial"
    assert len(pruned) + len(completed) == 6

    runs = study_runs(project, "asha")
    assert sorted(runs) == list(range(6))
    assert all(r.info.status == "FINISHED" for r in runs.values())
    assert {n for n, r in runs.items() if r.data.tags.get("dlpipe.pruned") == "true"} == pruned
    epochs = {
        n: len(client(project).get_metric_history(r.info.run_id, "val/acc"))
        for n, r in runs.items()
    }
    assert all(epochs[n] < 5 for n in pruned) and all(epochs[t.number] == 5 for t in completed)
    # Each complete trial's score is its best epoch's, as on the Hydra runner.
    assert all(t.value == runs[t.number].data.metrics["best/val/acc"] for t in completed)

    # Two at a time, never more; and no batches: a trial starts as soon as any slot frees,
    # while the trial that began with the one it replaces still runs.
    spans = [(t.datetime_start, t.datetime_complete) for t in found]
    for start, _ in spans:
        assert sum(s <= start < e for s, e in spans) <= 2
    assert any(spans[i][0] < spans[j][0] < spans[i][1] for j in range(2, 6) for i in range(j)), (
        "every trial waited for all earlier ones"
    )

    parent = parent_of(project, runs)
    assert parent.info.status == "FINISHED"
    assert parent.data.metrics["search/pruned"] == len(pruned)
    assert parent.data.metrics["search/complete"] == len(completed)
    best = yaml.safe_load(next(project.glob("multirun/*/*/best_params.yaml")).read_text())
    assert best["value"] == max(t.value for t in completed)
    artifacts = {a.path for a in client(project).list_artifacts(parent.info.run_id, "search")}
    assert "search/optuna_history.png" in artifacts and "search/best_params.yaml" in artifacts


@pytest.mark.parametrize("runner", ["hydra", "ray"])
def test_a_search_whose_trials_keep_failing_stops_with_one_line(project: Path, runner: str):
    study = f"failing-{runner}"
    done = run(
        [
            *search(study, 4, "trainer.max_epochs=2", runner=runner),
            "optim=sgd",
            # Diverges in its first epoch: every trial fails.
            "optim.lr=100000.0",
            "hydra.sweeper.max_failure_rate=0.25",
        ],
        project,
        check=False,
    )
    assert done.returncode == 2
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "more than hydra.sweeper.max_failure_rate=0.25" in errors[0]
    found = trials(project, study)
    failed = [t for t in found if t.state == State.FAIL]
    assert 2 <= len(failed) < 4  # stopped once more than a quarter of 4 trials had failed
    runs = study_runs(project, study)
    for trial in failed:
        assert runs[trial.number].info.status == "FAILED"
        assert runs[trial.number].data.tags["dlpipe.failure"].startswith("TrainingError:")
    parent = parent_of(project, runs)
    assert parent.info.status == "FAILED"
    assert parent.data.tags["dlpipe.failure"] == errors[0].removeprefix("error: ")
    assert all(r.info.status != "RUNNING" for r in runs.values())


def test_a_trial_trains_on_ray_train_workers_beside_another(project: Path, monkeypatch):
    # Four workers and two trials on two cores start slowly: fail, not hang, if they do not.
    monkeypatch.setenv("RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S", "120")
    run(
        search("workers", 2, "cluster=ray", "cluster.num_workers=2", "trainer.max_epochs=2"),
        project,
    )
    found = trials(project, "workers")
    assert [t.state for t in found] == [State.COMPLETE, State.COMPLETE]
    runs = study_runs(project, "workers")
    for trial in found:
        tags = runs[trial.number].data.tags
        assert {"ray.worker.0", "ray.worker.1"} <= set(tags)
        assert (
            len(client(project).get_metric_history(runs[trial.number].info.run_id, "val/acc")) == 2
        )
    (first, second) = [(t.datetime_start, t.datetime_complete) for t in found]
    assert second[0] < first[1] and first[0] < second[1], "the two trials did not share the cluster"


def test_a_search_killed_with_its_driver_resumes_to_exactly_n_trials(project: Path):
    command = search("resume", 4, "trainer.max_epochs=3")
    process = start_until(command, project, " complete: ", start_new_session=True)
    # The driver and the local Ray it started, in its process group.
    family = [psutil.Process(process.pid), *psutil.Process(process.pid).children(recursive=True)]
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    psutil.wait_procs(family, timeout=30)
    assert State.RUNNING in {t.state for t in trials(project, "resume")}

    run(command, project)
    found = trials(project, "resume")
    assert [t.number for t in found] == list(range(4))
    assert all(t.state in (State.COMPLETE, State.PRUNED, State.FAIL) for t in found)
    runs = study_runs(project, "resume")
    for trial in found:
        if trial.state == State.PRUNED:  # by the study's median pruner
            assert runs[trial.number].data.tags.get("dlpipe.pruned") == "true"
    statuses = [r.info.status for r in client(project).search_runs(["1"])]
    assert "RUNNING" not in statuses
