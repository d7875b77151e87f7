"""`dlpipe reproduce` on a real run of a real tiny training, in a clean git copy of the project."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow import MlflowClient

from tests.conftest import BIN_DIR, file_contents, make_project, restored, run

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, str]:
    """A clean clone, prepared and trained for 2 epochs; and the id of the training's run."""
    project = make_project(tmp_path_factory.mktemp("reproduce") / "project")
    run([sys.executable, "pipelines/prepare.py"], project)
    run([sys.executable, "pipelines/train.py", "trainer.max_epochs=2"], project)
    return project, json.loads((project / "models/run.json").read_text())["run_id"]


def reproduce(project: Path, *args: str) -> subprocess.CompletedProcess:
    return run([str(BIN_DIR / "dlpipe"), "reproduce", *args], project, check=False)


def test_the_run_is_reproduced_exactly(trained):
    project, original = trained
    models = file_contents(project / "models")
    done = reproduce(project, original)
    assert done.returncode == 0, done.stderr
    header, *rows, verdict = done.stdout.splitlines()
    assert header.split() == ["metric", "epochs", "original", "reproduced", "same"]
    cells = {row.split()[0]: row.split()[1:] for row in rows}
    assert set(cells) == {
        "best/val/acc",
        "train/acc",
        "train/loss",
        "train/lr",
        "val/acc",
        "val/loss",
    }
    for name, (epochs, value, again, same) in cells.items():
        assert (epochs, same) == ("1" if name.startswith("best/") else "2", "yes")
        assert value == again
    reproduction = verdict.split()[1]
    assert (
        verdict
        == f"run {reproduction} reproduces run {original}: every metric equal at every epoch"
    )

    client = MlflowClient(tracking_uri=f"sqlite:///{project / 'mlflow.db'}")
    first, second = client.get_run(original), client.get_run(reproduction)
    assert second.info.status == "FINISHED"
    assert second.data.tags["dlpipe.reproduces"] == original
    for tag in ("mlflow.source.git.commit", "dlpipe.git_dirty", "dlpipe.data_hash"):
        assert second.data.tags[tag] == first.data.tags[tag]
    assert second.data.params["resume"] == "False"
    assert file_contents(project / "models") == models


def test_uncommitted_changes_are_named_and_stop_it(trained):
    project, original = trained
    code = project / "src/dlpipe/models/cnn.py"
    with restored(code.parent):
        code.write_text(code.read_text() + "# a local change\n")
        done = reproduce(project, original)
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        f"error: the working tree is not what run {original} was trained with (make it so, "
        "or pass --force to reproduce it anyway):",
        "  uncommitted changes to src/dlpipe/models/cnn.py: commit or stash them",
    ]


def test_other_prepared_data_is_named_by_its_hash(trained):
    project, original = trained
    recorded = json.loads((project / "data/prepared/meta.json").read_text())["hash"]
    with restored(project / "data/prepared"):
        run([sys.executable, "pipelines/prepare.py", "data.split.seed=1"], project)
        found = json.loads((project / "data/prepared/meta.json").read_text())["hash"]
        done = reproduce(project, original)
    assert found != recorded
    assert done.returncode == 2
    assert done.stderr.splitlines()[1:] == [
        f"  data/prepared holds data of hash {found}; the run was trained on {recorded}: "
        "prepare the run's data: `dvc checkout data/prepared` at its commit, or "
        "`python pipelines/prepare.py` with its data settings"
    ]


def test_an_unknown_run_is_one_line(trained):
    project, _ = trained
    done = reproduce(project, "0" * 32)
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith(f"error: run {'0' * 32} is not in tracking store sqlite:///")
