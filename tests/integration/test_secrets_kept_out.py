"""A training whose tracking URI holds a password records it nowhere: not in MLflow (tags,
params, artifacts, the server's store), not in its output, not in what Hydra keeps."""

import sys
from pathlib import Path

import pytest
from mlflow import MlflowClient

from tests.conftest import MlflowServer, run

pytestmark = pytest.mark.slow

# The password has no user name before it, holds an unencoded `@`, and ends with the value
# of a secret-looking environment variable, read by the config: each form at once.
PASSWORD_HEAD, TOKEN = "hunter2", "env-held-secret"
SECRETS = (PASSWORD_HEAD.encode(), TOKEN.encode())


def leaks(folder: Path) -> list[Path]:
    """Files under `folder` that hold a secret."""
    return [
        path
        for path in folder.rglob("*")
        if path.is_file() and any(secret in path.read_bytes() for secret in SECRETS)
    ]


def test_a_password_in_the_tracking_uri_is_recorded_nowhere(
    project: Path, mlflow_server: MlflowServer, tmp_path: Path, monkeypatch
):
    monkeypatch.setenv("TRACKING_TOKEN", TOKEN)
    host = mlflow_server.uri.removeprefix("http://")
    uri = f"tracking.uri=http://:{PASSWORD_HEAD}@${{oc.env:TRACKING_TOKEN}}@{host}"
    run([sys.executable, "pipelines/prepare.py"], project)
    # The server takes no login: it ignores the one the URI sends.
    done = run([sys.executable, "pipelines/train.py", uri, "trainer.max_epochs=1"], project)

    said = (done.stdout + done.stderr).splitlines()
    assert not [line for line in said if PASSWORD_HEAD in line or TOKEN in line]
    client = MlflowClient(tracking_uri=mlflow_server.uri)
    (found,) = client.search_runs([client.get_experiment_by_name("dlpipe").experiment_id])
    assert found.info.status == "FINISHED"
    recorded = [*found.data.tags.values(), *found.data.params.values()]
    assert not [value for value in recorded if PASSWORD_HEAD in value or TOKEN in value]
    assert f"tracking.uri=http://:***@{host}" in found.data.tags["dlpipe.command"]
    client.download_artifacts(found.info.run_id, "", str(tmp_path / "artifacts"))
    assert (tmp_path / "artifacts" / "config.yaml").is_file()
    # Whatever else the run holds, in the server's database or among its artifacts.
    assert not leaks(tmp_path / "artifacts") and not leaks(mlflow_server.folder)
    # Hydra's record of the run (.hydra/*.yaml, the job's log) and the training's outputs.
    assert (
        list((project / "outputs").rglob("overrides.yaml"))
        and not leaks(project / "outputs")
        and not leaks(project / "models")
    )
