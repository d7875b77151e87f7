"""Bad input stops a stage with one line on stderr, exit code 2, and no MLflow run behind it."""

import socket
import sys
from pathlib import Path

import pytest

from tests.conftest import run

pytestmark = pytest.mark.slow


def stage(project: Path, name: str, *overrides: str):
    return run([sys.executable, f"pipelines/{name}.py", *overrides], project, check=False)


def assert_one_line_error(done, *fragments: str) -> str:
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2, done.stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    for fragment in fragments:
        assert fragment in lines[0]
    return lines[0]


def test_unknown_model_and_data_list_the_valid_ones(project: Path):
    assert_one_line_error(
        stage(project, "train", "model=resnet"), "unknown model 'resnet'", "cnn, mlp"
    )
    assert_one_line_error(stage(project, "prepare", "data=mnist"), "unknown data 'mnist'", "digits")
    assert not (project / "data" / "prepared").exists()


def test_missing_prepared_data_names_the_file_and_the_fix(project: Path):
    assert_one_line_error(
        stage(project, "train"), "data/prepared/meta.json is missing", "run the prepare stage first"
    )
    assert_one_line_error(
        stage(project, "evaluate"), "models/run.json is missing", "run the train stage first"
    )


def test_bad_values_and_unreachable_tracking_start_no_run(project: Path):
    run([sys.executable, "pipelines/prepare.py"], project)
    assert_one_line_error(
        stage(project, "train", "optim.lr=0"), "optim.lr must be a positive number, got 0"
    )
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    uri = f"http://127.0.0.1:{port}"
    assert_one_line_error(
        stage(project, "train", f"tracking.uri={uri}"), f"tracking server {uri} is unreachable"
    )
    # Nothing got as far as opening a run: no store was even created.
    assert not (project / "mlflow.db").exists()
    assert not (project / "models").exists()
