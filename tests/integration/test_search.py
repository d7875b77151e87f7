"""Optuna search for real: TPE with pruning, sqlite study storage, resume after a kill -9."""

import signal
import sys
from pathlib import Path

import optuna
import pytest
import yaml
from mlflow import MlflowClient

from tests.conftest import prepared_project, run, start_until

pytestmark = pytest.mark.slow

State = optuna.trial.TrialState


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    return prepared_project(tmp_path_factory.mktemp("search") / "project")


def search(project: Path, study: str, n_trials: int) -> list[str]:
    return [
        sys.executable,
        "pipelines/train.py",
        "-m",
        "search=digits",
        f"search.study={study}",
        f"search.n_trials={n_trials}",
        "trainer.max_epochs=4",
    ]


def trials(project: Path, study: str) -> list:
    storage = f"sqlite:///{project / 'optuna.db'}"
    return optuna.load_study(study_name=study, storage=storage).get_trials(deepcopy=False)


def trial_runs(project: Path, study: str) -> list:
    """The MLflow runs of a study's trials (its sweep's parent runs carry no trial number)."""
    client = MlflowClient(tracking_uri=f"sqlite:///{project / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("dlpipe").experiment_id
    found = client.search_runs([experiment], filter_string=f"tags.`optuna.study` = '{study}'")
    return [run for run in found if "optuna.trial" in run.data.tags]


def test_search_prunes_and_records_each_trial_in_mlflow(project: Path):
    run(search(project, "pruning", 8), project)
    found = trials(project, "pruning")
    assert len(found) == 8
    pruned = {t.number for t in found if t.state == State.PRUNED}
    assert pruned, "the median pruner stopped no trial"
    assert all(t.state in (State.COMPLETE, State.PRUNED) for t in found)

    children = trial_runs(project, "pruning")
    assert sorted(int(r.data.tags["optuna.trial"]) for r in children) == list(range(8))
    assert all(r.info.status == "FINISHED" for r in children)
    assert {
        int(r.data.tags["optuna.trial"])
        for r in children
        if r.data.tags.get("dlpipe.pruned") == "true"
    } == pruned

    (best_file,) = project.glob("multirun/*/*/best_params.yaml")
    best = yaml.safe_load(best_file.read_text())
    completed = [t for t in found if t.state == State.COMPLETE]
    assert best["value"] == max(t.value for t in completed)
    assert set(best["params"]) == {"optim.lr", "model.dropout", "data.batch_size"}

    client = MlflowClient(tracking_uri=f"sqlite:///{project / 'mlflow.db'}")
    parent = client.get_run(children[0].data.tags["mlflow.parentRunId"])
    assert parent.data.metrics["search/pruned"] == len(pruned)
    assert parent.data.metrics["search/complete"] == len(completed)
    assert {a.path for a in client.list_artifacts(parent.info.run_id, "search")} == {
        "search/best_params.yaml",
        "search/optuna_history.png",
        "search/optuna_importances.png",
        "search/optuna_parallel.png",
    }


def write_search(project: Path, name: str, old: str, new: str) -> None:
    text = (project / "conf/search/digits.yaml").read_text()
    assert old in text
    (project / f"conf/search/{name}.yaml").write_text(text.replace(old, new))


def test_failing_trials_are_fail_and_failed_runs_and_the_search_goes_on(project: Path):
    # Batch size 0 fails before training, learning rate 1e5 diverges during it.
    write_search(project, "failing", "choice(32, 64, 128)", "choice(32, 0)")
    text = (project / "conf/search/failing.yaml").read_text()
    (project / "conf/search/failing.yaml").write_text(
        text.replace("tag(log, interval(3e-4, 3e-2))", "choice(0.05, 100000.0)")
    )
    run(
        [
            sys.executable,
            "pipelines/train.py",
            "-m",
            "search=failing",
            "optim=sgd",
            "search.study=failing",
            "search.n_trials=6",
            "search.pruner=null",
            "trainer.max_epochs=1",
            # Every trial may fail: this search goes on to its last (see test_search_tune
            # for one that stops).
            "hydra.sweeper.max_failure_rate=1",
        ],
        project,
    )
    found = trials(project, "failing")
    assert len(found) == 6
    runs = {int(r.data.tags["optuna.trial"]): r for r in trial_runs(project, "failing")}
    reasons = set()
    for trial in found:
        fails = trial.params["data.batch_size"] == 0 or trial.params["optim.lr"] > 1
        assert trial.state == (State.FAIL if fails else State.COMPLETE)
        assert runs[trial.number].info.status == ("FAILED" if fails else "FINISHED")
        reason = runs[trial.number].data.tags.get("dlpipe.failure", "")
        reasons.add(reason.split(":")[0])
    assert reasons == {"", "ConfigError", "TrainingError"}  # each kind of outcome happened

    client = MlflowClient(tracking_uri=f"sqlite:///{project / 'mlflow.db'}")
    parent = client.get_run(runs[0].data.tags["mlflow.parentRunId"])
    failed = sum(t.state == State.FAIL for t in found)
    assert parent.data.metrics["search/fail"] == parent.data.metrics["sweep/failed"] == failed


@pytest.mark.parametrize(
    "old,new,message",
    [
        (
            "optim.lr: tag",
            "optim.rate: tag",
            "hydra.sweeper.params.optim.rate: optim.rate is not a config key",
        ),
        (
            "interval(0.0, 0.5)",
            "interval(0.5, 0.1)",
            "hydra.sweeper.params.model.dropout: interval(0.5, 0.1) is no search range "
            "(`low <= high` must hold, but got (low=0.5, high=0.1).)",
        ),
        ("runner: hydra", "runner: tune", "search.runner must be one of hydra, ray, got 'tune'"),
    ],
)
def test_bad_search_space_stops_before_the_first_trial(project: Path, old, new, message):
    write_search(project, "bad", old, new)
    done = run(
        [sys.executable, "pipelines/train.py", "-m", "search=bad", "search.study=bad"],
        project,
        check=False,
    )
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert line == f"error: {message}"
    studies = optuna.get_all_study_names(storage=f"sqlite:///{project / 'optuna.db'}")
    assert "bad" not in studies  # stopped before the study, let alone a trial


def test_killed_search_resumes_to_n_trials_without_running_runs(project: Path):
    # Trials 0 and 1 are done and trial 2 is running when the sweep is killed.
    process = start_until(search(project, "resume", 6), project, "search.trial=2")
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    assert State.RUNNING in {t.state for t in trials(project, "resume")}

    run(search(project, "resume", 6), project)
    found = trials(project, "resume")
    assert [t.number for t in found] == list(range(6))
    assert found[2].state == State.FAIL  # the trial the kill interrupted
    assert all(t.state != State.RUNNING for t in found)
    client = MlflowClient(tracking_uri=f"sqlite:///{project / 'mlflow.db'}")
    statuses = [
        r.info.status
        for r in client.search_runs([client.get_experiment_by_name("dlpipe").experiment_id])
    ]
    assert "RUNNING" not in statuses
