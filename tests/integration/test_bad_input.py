"""Bad input stops a stage with one line on stderr, exit code 2, and no MLflow run behind it."""

import json
import shutil
import sys
from pathlib import Path

import pytest

from tests.conftest import free_port, make_project, run

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
    for choice in ("model=vgg", "+model=vgg"):
        assert_one_line_error(
            stage(project, "train", choice), "unknown model 'vgg'", "cnn, gan, gru, lstm, mlp"
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


@pytest.mark.parametrize(
    "override,fragment",
    [
        ("optim.lr=0", "optim.lr must be a positive number, got 0"),
        ("trainer=gpu", "trainer settings refused"),  # no GPU here
        ("+optim.betas=1", "optim 'adam' refuses its settings"),
        ("data.split.seed=3", "data/prepared was made with"),
        ("tracking.uri=bogus://x", "tracking store bogus://x cannot be used"),
        (
            "tracking.uri=http://127.0.0.1:{port}",
            "tracking server http://127.0.0.1:{port} is unreachable",
        ),
    ],
)
def test_bad_settings_stop_before_any_run(prepared_project: Path, override, fragment):
    port = free_port()
    done = stage(prepared_project, "train", override.format(port=port))
    assert_one_line_error(done, fragment.format(port=port))
    # Nothing got as far as opening a run: no store was even created, no model written.
    assert not (prepared_project / "mlflow.db").exists()
    assert not (prepared_project / "models").exists()


@pytest.fixture(scope="module")
def prepared_project(tmp_path_factory) -> Path:
    project = make_project(tmp_path_factory.mktemp("bad-input") / "project")
    run([sys.executable, "pipelines/prepare.py"], project)
    return project


@pytest.fixture(scope="module")
def trained_project(tmp_path_factory) -> Path:
    project = make_project(tmp_path_factory.mktemp("evaluate") / "project")
    for script in ("prepare", "train"):
        run([sys.executable, f"pipelines/{script}.py", "trainer.max_epochs=1"], project)
    return project


def corrupt_checkpoint(models: Path) -> None:
    (models / "best.ckpt").write_bytes((models / "best.ckpt").read_bytes()[:1000])


def unknown_run(models: Path) -> None:
    record = json.loads((models / "run.json").read_text())
    (models / "run.json").write_text(json.dumps({**record, "run_id": "0" * 32}))


def foreign_checkpoint(models: Path) -> None:
    shutil.copy(models / "last.ckpt", models / "best.ckpt")  # differs from the recorded best
    (models / "best.ckpt").write_bytes((models / "best.ckpt").read_bytes() + b"\0")


@pytest.mark.parametrize(
    "damage,fragment",
    [
        (corrupt_checkpoint, "is not the checkpoint run"),
        (foreign_checkpoint, "is not the checkpoint run"),
        (unknown_run, "is not in tracking store"),
    ],
)
def test_evaluate_refuses_damaged_outputs_and_writes_nothing(trained_project, damage, fragment):
    models, reports = trained_project / "models", trained_project / "reports"
    saved = {path.name: path.read_bytes() for path in models.iterdir()}
    before = {path: path.read_bytes() for path in reports.rglob("*") if path.is_file()}
    try:
        damage(models)
        assert_one_line_error(stage(trained_project, "evaluate"), fragment)
        assert {path: path.read_bytes() for path in reports.rglob("*") if path.is_file()} == before
    finally:
        for name, content in saved.items():
            (models / name).write_bytes(content)
