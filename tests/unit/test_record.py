"""models/run.json read and written through one type: the same JSON object on disk, older
records still read, and a damaged one named in one line with what to do."""

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from dlpipe.errors import DataError
from dlpipe.record import TRAIN_FIRST, RunRecord
from dlpipe.serving.loading import open_model
from tests.conftest import ROOT

RECORD = RunRecord(
    run_id="0" * 32,
    experiment="dlpipe",
    data={"_target_": "dlpipe.data.builtin.digits", "name": "digits"},
    registry_name="digits",
    model={"_target_": "dlpipe.models.mlp.mlp", "name": "mlp", "hidden": [8]},
    task="classification",
    task_config=None,
    input_shape=[1, 8, 8],
    num_outputs=10,
    classes=[str(digit) for digit in range(10)],
    heads=None,
    shared=64,
    data_hash="d" * 64,
    best_checkpoint="models/best.ckpt",
    best_checkpoint_sha256="c" * 64,
    monitor="val/acc",
    best_score=0.9,
)
# The keys of models/run.json, as every training has written them: projects and tools
# read the file as this JSON object.
ON_DISK = {
    "run_id",
    "experiment",
    "data",
    "registry_name",
    "model",
    "task",
    "task_config",
    "input_shape",
    "num_outputs",
    "classes",
    "heads",
    "shared",
    "data_hash",
    "best_checkpoint",
    "best_checkpoint_sha256",
    "monitor",
    "best_score",
    "vocab_size",
    "refit_epochs",
}


def written(path: Path, drop: tuple[str, ...] = (), **changes) -> Path:
    """RECORD's JSON at `path`, with `changes` and without the keys in `drop`."""
    held = {**RECORD.as_dict(), **changes}
    path.write_text(json.dumps({k: v for k, v in held.items() if k not in drop}))
    return path


def test_a_record_reads_back_as_written_and_keeps_its_json_shape(tmp_path: Path):
    path = tmp_path / "models" / "run.json"
    RECORD.write(path)
    assert set(json.loads(path.read_text())) == ON_DISK
    assert RunRecord.read(path) == RECORD
    assert not list(path.parent.glob(".run.json.*"))  # written through a temporary file


def test_a_record_from_before_multi_task_data_and_user_tasks_reads_as_holding_none(tmp_path):
    path = written(
        tmp_path / "run.json", drop=("task_config", "heads", "shared", "vocab_size", "refit_epochs")
    )
    assert RunRecord.read(path) == replace(RECORD, shared=None)


def test_a_key_this_dlpipe_does_not_know_is_left_out(tmp_path: Path):
    assert RunRecord.read(written(tmp_path / "run.json", seed=3)) == RECORD


def test_the_serving_subset_and_the_settings_derive_from_the_fields():
    assert set(RECORD.serving()) == {
        "run_id",
        "data_hash",
        "model",
        "task",
        "input_shape",
        "num_outputs",
        "classes",
        "heads",
        "shared",
        "vocab_size",
    }
    assert RECORD.settings() == {
        "data": RECORD.data,
        "model": RECORD.model,
        "task": None,
        "multitask.shared": 64,
    }


@pytest.mark.parametrize(
    "damage,message",
    [
        (lambda path: None, "run.json is missing: "),
        (lambda path: path.write_text('{"run_id": '), "run.json is unreadable (Expecting value"),
        (lambda path: path.write_text("[1, 2]"), "run.json is unreadable (not a JSON object): "),
        (
            lambda path: written(path, drop=("run_id", "best_checkpoint")),
            "run.json lacks run_id, best_checkpoint: ",
        ),
        (
            lambda path: written(path, input_shape="1x8x8"),
            "run.json holds a str as input_shape, not list[int]: ",
        ),
        (lambda path: written(path, num_outputs=True), "holds a bool as num_outputs, not int: "),
        (lambda path: written(path, classes={"0": 0}), "as classes, not list[str] | None: "),
    ],
)
def test_a_missing_or_damaged_record_is_one_line_naming_the_file_and_the_fix(
    tmp_path: Path, damage, message
):
    path = tmp_path / "run.json"
    damage(path)
    with pytest.raises(DataError) as refused:
        RunRecord.read(path)
    said = str(refused.value)
    assert "\n" not in said and said.startswith(str(tmp_path)) and message in said
    assert said.endswith(TRAIN_FIRST)


def test_predict_names_a_run_file_that_lacks_keys(tmp_path: Path, monkeypatch):
    """`dlpipe predict CHECKPOINT --run-file` reads the record through the same type."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "best.ckpt").write_bytes(b"")
    run_file = written(tmp_path / "run.json", drop=("model",))
    with pytest.raises(DataError, match=r"run.json lacks model: give the models/run.json that"):
        open_model(str(tmp_path / "best.ckpt"), None, str(run_file))


def test_the_record_reads_without_torch_or_mlflow():
    """Reading it is the first check of evaluate and predict, before either loads."""
    script = (
        "import sys\n"
        "import dlpipe.record\n"
        "print(' '.join(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'mlflow'})))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == ""
