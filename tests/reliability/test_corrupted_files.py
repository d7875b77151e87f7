"""Corrupted files, for real: each stage, run on a damaged checkpoint, prepared split or
data file, stops with one line naming the file and the damage, exit code 2, no MLflow
run and no output changed.

One project is prepared and trained once (one epoch); each test damages a copy of its
files and puts them back.
"""

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from mlflow import MlflowClient

from tests.conftest import assert_one_line_error, file_contents, restored, stage

pytestmark = pytest.mark.slow

RUN_TRAIN = "run the train stage first"
RERUN_PREPARE = "rerun the prepare stage"


def run_ids(project: Path) -> set[str]:
    client = MlflowClient(f"sqlite:///{project / 'mlflow.db'}")
    experiments = [experiment.experiment_id for experiment in client.search_experiments()]
    return {run.info.run_id for run in client.search_runs(experiments)}


def truncated(models: Path) -> None:
    checkpoint = models / "best.ckpt"
    checkpoint.write_bytes(checkpoint.read_bytes()[:1000])


def deleted(models: Path) -> None:
    (models / "best.ckpt").unlink()


def of_another_model(models: Path) -> None:
    """The run record now says mlp; the checkpoint holds the CNN it trained."""
    record = json.loads((models / "run.json").read_text())
    mlp = yaml.safe_load((models.parent / "conf" / "model" / "mlp.yaml").read_text())
    (models / "run.json").write_text(json.dumps({**record, "model": mlp}))


@pytest.mark.parametrize(
    "damage,fragments",
    [
        (truncated, ["checkpoint models/best.ckpt is truncated or not a checkpoint (Runtime"]),
        (deleted, ["checkpoint models/best.ckpt is missing"]),
        (
            of_another_model,
            ["checkpoint models/best.ckpt was saved by another model: it lacks 1 of this model"],
        ),
    ],
)
def test_evaluate_names_a_bad_checkpoint(trained_project: Path, damage, fragments):
    models, reports = trained_project / "models", trained_project / "reports"
    before = file_contents(reports)
    with restored(models):
        damage(models)
        assert_one_line_error(stage(trained_project, "evaluate"), *fragments, RUN_TRAIN)
    assert file_contents(reports) == before


def change_split(prepared: Path, name: str, change) -> None:
    with np.load(prepared / f"{name}.npz") as arrays:
        x, y = change(arrays["x"].copy(), arrays["y"].copy())
    np.savez(prepared / f"{name}.npz", x=x, y=y)


def nan_in_x(prepared: Path) -> None:
    def poison(x, y):
        x[5, 0, 3, 3] = np.nan
        return x, y

    change_split(prepared, "train", poison)


def label_out_of_range(prepared: Path) -> None:
    def mislabel(x, y):
        y[7] = 10
        return x, y

    change_split(prepared, "val", mislabel)


def fewer_features(prepared: Path) -> None:
    change_split(prepared, "val", lambda x, y: (x[..., :7], y))


def empty_split(prepared: Path) -> None:
    change_split(prepared, "train", lambda x, y: (x[:0], y[:0]))


@pytest.mark.parametrize(
    "damage,fragment",
    [
        (nan_in_x, "train.npz: x of sample 5 holds NaN or inf"),
        (label_out_of_range, "val.npz: label 10 of sample 7 is not a class index (0 to 9"),
        (
            fewer_features,
            "val.npz: samples are shaped (1, 8, 7), but meta.json's input_shape is [1, 8, 8]",
        ),
        (empty_split, "train.npz: it holds no samples"),
    ],
)
def test_train_names_a_damaged_split_and_opens_no_run(trained_project: Path, damage, fragment):
    prepared, models = trained_project / "data" / "prepared", trained_project / "models"
    runs, trained = run_ids(trained_project), file_contents(models)
    with restored(prepared):
        damage(prepared)
        done = stage(trained_project, "train", "trainer.max_epochs=1")
        assert_one_line_error(done, f"prepared data file data/prepared/{fragment}", RERUN_PREPARE)
    assert run_ids(trained_project) == runs
    assert file_contents(models) == trained


@pytest.mark.parametrize(
    "content,fragment",
    [
        ("a,label\n1.0,0\n,1\n2.0,0\n", "column 'a', row 2: an empty or missing value"),
        ("a,label\n1.0,0\n2.0,inf\n", "column 'label', row 2: the label is inf"),
        ("", "is empty: add a header row and data rows"),
    ],
)
def test_prepare_names_a_bad_user_table(trained_project: Path, tmp_path: Path, content, fragment):
    table = tmp_path / "pets.csv"
    table.write_text(content)
    prepared = trained_project / "data" / "prepared"
    before = file_contents(prepared)
    done = stage(
        trained_project, "prepare", "data=table", f"data.path={table}", "data.target=label"
    )
    assert_one_line_error(done, f"data file {table}", fragment)
    assert file_contents(prepared) == before
