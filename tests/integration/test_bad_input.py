"""Bad input stops a stage with one line on stderr, exit code 2, and no MLflow run behind it."""

import json
import shutil
import sys
from pathlib import Path

import pytest
from mlflow import MlflowClient

from tests.conftest import (
    assert_one_line_error,
    file_contents,
    free_port,
    make_project,
    restored,
    run,
    stage,
)

pytestmark = pytest.mark.slow


def test_unknown_model_and_data_list_the_valid_ones(project: Path):
    families = ", ".join(sorted(path.stem for path in (project / "conf/model").glob("*.yaml")))
    for choice in ("model=vgg", "+model=vgg"):
        assert_one_line_error(stage(project, "train", choice), "unknown model 'vgg'", families)
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
        ("optim.lr=0", "optim.lr must be a number > 0, got 0"),
        # A misspelt key: Hydra's own message is five lines.
        ("trainer.max_eppochs=3", "trainer.max_eppochs is not a setting of trainer: it takes"),
        ("+trainer.max_eppochs=3", "trainer.max_eppochs is not a setting of trainer: it takes"),
        (
            "tracking.uri=http://alice:abc-123-secret@127.0.0.1:{port}",
            "tracking server http://alice:***@127.0.0.1:{port} is unreachable",
        ),
        ("trainer=gpu", "trainer settings refused"),  # no GPU here
        # Within the schema's ranges, but torch's SGD takes no Nesterov without momentum.
        ("optim=nesterov optim.momentum=0", "optim 'sgd' refuses its settings"),
        ("data.split.seed=3", "data/prepared was made with"),
        ("data.batch_size=100000", "data.batch_size=100000 exceeds the training split's 1257"),
        ("tracking.uri=bogus://x", "tracking store bogus://x cannot be used"),
        (
            "tracking.uri=http://127.0.0.1:{port}",
            "tracking server http://127.0.0.1:{port} is unreachable",
        ),
    ],
)
def test_bad_settings_stop_before_any_run(prepared_project: Path, override, fragment):
    port = free_port()
    done = stage(prepared_project, "train", *override.format(port=port).split())
    assert_one_line_error(done, fragment.format(port=port))
    # A password in a URL is masked: in the message and in what Hydra keeps of the run.
    assert "abc-123-secret" not in done.stderr
    kept = [path for path in (prepared_project / "outputs").rglob("*.yaml")]
    assert kept and not [path for path in kept if "abc-123-secret" in path.read_text()]
    # Nothing got as far as opening a run: no store was even created, no model written.
    assert not (prepared_project / "mlflow.db").exists()
    assert not (prepared_project / "models").exists()


def test_a_value_beyond_float32_stops_prepare_and_keeps_the_prepared_data(prepared_project):
    rows = [f"{row},{1e308 if row == 2 else row},{'xy'[row % 2]}" for row in range(1, 41)]
    (prepared_project / "big.csv").write_text("\n".join(["a,b,label", *rows]) + "\n")
    prepared = prepared_project / "data" / "prepared"
    before = file_contents(prepared)
    done = stage(
        prepared_project, "prepare", "data=table", "data.path=big.csv", "data.target=label"
    )
    assert_one_line_error(done, "big.csv, column 'b', row 2: 1e+308 is beyond float32's range")
    assert file_contents(prepared) == before


def test_a_bad_value_stops_the_stage_before_torch_or_mlflow_is_imported(project: Path):
    done = run(
        [sys.executable, "-X", "importtime", "pipelines/train.py", "optim.lr=-1"],
        project,
        check=False,
    )
    # -X importtime writes a line per imported module to stderr: "import time: ... | name".
    timings = [line for line in done.stderr.splitlines() if line.startswith("import time:")]
    imported = {line.rsplit("|", 1)[1].strip().split(".")[0] for line in timings}
    assert {"hydra", "dlpipe"} <= imported
    assert not imported & {"torch", "lightning", "mlflow"}
    rest = [line for line in done.stderr.splitlines() if line.strip() and line not in timings]
    assert done.returncode == 2, done.stderr
    assert rest == ["error: optim.lr must be a number > 0, got -1"]


@pytest.fixture(scope="module")
def prepared_project(tmp_path_factory) -> Path:
    project = make_project(tmp_path_factory.mktemp("bad-input") / "project")
    run([sys.executable, "pipelines/prepare.py"], project)
    return project


def unknown_run(models: Path) -> None:
    record = json.loads((models / "run.json").read_text())
    (models / "run.json").write_text(json.dumps({**record, "run_id": "0" * 32}))


def other_checkpoint(models: Path) -> None:
    shutil.copy(models / "last.ckpt", models / "best.ckpt")  # differs from the recorded best
    (models / "best.ckpt").write_bytes((models / "best.ckpt").read_bytes() + b"\0")


@pytest.mark.parametrize(
    "damage,fragment",
    [
        (other_checkpoint, "is not the checkpoint run"),
        (unknown_run, "is not in tracking store"),
    ],
)
def test_evaluate_refuses_damaged_outputs_and_writes_nothing(trained_project, damage, fragment):
    models, reports = trained_project / "models", trained_project / "reports"
    before = file_contents(reports)
    with restored(models):
        damage(models)
        assert_one_line_error(stage(trained_project, "evaluate"), fragment)
        assert file_contents(reports) == before


def test_a_training_output_that_cannot_be_written_fails_the_run_in_one_line(prepared_project):
    """The checkpoint writer fails (here a folder stands where last.ckpt goes; a read-only
    models/ or a full disk stop the same writer): one line naming the file and the fix,
    the run FAILED with that reason, no half-written file."""
    models = prepared_project / "models"
    (models / "last.ckpt").mkdir(parents=True)
    client = MlflowClient(tracking_uri=f"sqlite:///{prepared_project / 'mlflow.db'}")
    client.search_experiments()  # the store made here: MLflow says so on stderr
    try:
        done = stage(prepared_project, "train", "trainer.max_epochs=1")
        line = assert_one_line_error(done, "last.ckpt: a folder has its name: move it away")
        experiment = client.get_experiment_by_name("dlpipe").experiment_id
        (latest,) = client.search_runs([experiment], order_by=["start_time DESC"], max_results=1)
        assert latest.info.status == "FAILED"
        assert latest.data.tags["dlpipe.failure"] == f"OutputError: {line[len('error: ') :]}"
        assert not [path for path in models.rglob("*") if path.name.endswith(".tmp")]
    finally:
        shutil.rmtree(models)
        (prepared_project / "mlflow.db").unlink(missing_ok=True)


def test_evaluate_into_reports_it_cannot_write_is_one_line(trained_project):
    reports = trained_project / "reports"
    plots, kept = reports / "plots", reports / "plots.kept"
    if plots.exists():
        plots.rename(kept)
    reports.mkdir(exist_ok=True)
    plots.write_text("a file where the plots folder goes")
    before = file_contents(reports)
    try:
        done = stage(trained_project, "evaluate")
        assert_one_line_error(
            done, "cannot write reports/plots/", "reports/plots is a file, not a folder: move it"
        )
        assert file_contents(reports) == before
    finally:
        plots.unlink()
        if kept.exists():
            kept.rename(plots)
