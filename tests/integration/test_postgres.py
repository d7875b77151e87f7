"""A team's shared stores on PostgreSQL: an `mlflow server` backed by it, serving the
artifacts itself (clients need no access to its folder), and Optuna's study storage."""

import sys
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
from mlflow import MlflowClient

from tests.conftest import BIN_DIR, MlflowServer, free_port, run
from tests.postgres import Postgres

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def postgres() -> Iterator[Postgres]:
    server = Postgres(free_port())
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture
def tracking(postgres: Postgres, tmp_path: Path) -> Iterator[MlflowServer]:
    server = MlflowServer(tmp_path / "mlflow-server", postgres.create("mlflow"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_train_evaluate_search_and_list_against_postgresql(
    project: Path, postgres: Postgres, tracking: MlflowServer
):
    server = tracking.uri
    run([sys.executable, "pipelines/prepare.py"], project)
    for script in ("train", "evaluate"):
        command = [sys.executable, f"pipelines/{script}.py", f"tracking.uri={server}"]
        run([*command, "trainer.max_epochs=2"], project)
    client = MlflowClient(tracking_uri=server)
    (trained,) = client.search_runs([client.get_experiment_by_name("dlpipe").experiment_id])
    assert trained.info.status == "FINISHED" and "test/acc" in trained.data.metrics
    # Artifacts go through the server, not to a path the client must reach.
    assert trained.info.artifact_uri.startswith("mlflow-artifacts:")
    plots = {a.path for a in client.list_artifacts(trained.info.run_id, "plots")}
    assert "plots/confusion.png" in plots
    (version,) = client.search_model_versions("name = 'digits'")
    assert version.run_id == trained.info.run_id
    listed = run([str(BIN_DIR / "dlpipe"), "runs", f"tracking.uri={server}"], project)
    assert trained.info.run_id[:8] in listed.stdout

    # A search whose study lives in PostgreSQL: every trial once, each a child run.
    storage = postgres.create("optuna")
    search = [sys.executable, "pipelines/train.py", "-m", "search=digits"]
    settings = ["search.study=shared", f"search.storage={storage}", "search.n_trials=3"]
    run([*search, *settings, "trainer.max_epochs=2", f"tracking.uri={server}"], project)
    trials = optuna.load_study(study_name="shared", storage=storage).get_trials(deepcopy=False)
    assert sorted(trial.number for trial in trials) == [0, 1, 2]
    children = client.search_runs(
        [client.get_experiment_by_name("dlpipe").experiment_id],
        filter_string="tags.`optuna.study` = 'shared'",
    )
    numbered = [r for r in children if "optuna.trial" in r.data.tags]
    assert sorted(int(r.data.tags["optuna.trial"]) for r in numbered) == [0, 1, 2]
    assert len({r.data.tags["mlflow.parentRunId"] for r in numbered}) == 1
