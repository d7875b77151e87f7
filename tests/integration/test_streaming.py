"""Training and evaluating on data prepared in shards, through the stages."""

import json
import sys
from pathlib import Path

import pandas as pd
import pytest
from mlflow import MlflowClient

from tests.conftest import assert_one_line_error, run
from tests.unit.test_shards import SHARDED, write_images

pytestmark = pytest.mark.slow


def test_streamed_training_learns_and_is_evaluated_in_its_run(project: Path, tmp_path: Path):
    images = write_images(tmp_path / "images", per_class=40, size=(12, 12))
    data = ["data=images", f"data.path={images}", *SHARDED]
    run([sys.executable, "pipelines/prepare.py", *data], project)
    meta = json.loads((project / "data/prepared/meta.json").read_text())
    assert meta["format"] == "shards" and len(meta["shards"]["train"]) > 2
    train = [sys.executable, "pipelines/train.py", *data, "model=cnn", "trainer.max_epochs=4"]
    run([*train, "trainer.refit=true"], project)
    run([sys.executable, "pipelines/evaluate.py", *data], project)
    record = json.loads((project / "models/run.json").read_text())
    trained = MlflowClient(f"sqlite:///{project / 'mlflow.db'}").get_run(record["run_id"])
    assert trained.info.status == "FINISHED"
    assert trained.data.metrics["test/acc"] >= 0.9  # three colours, told apart
    assert trained.data.tags["dlpipe.data_hash"] == meta["hash"]

    # A shard damaged after prepare: named when training reads it, the run FAILED.
    shard = project / "data/prepared" / meta["shards"]["train"][1]["file"]
    shard.write_bytes(shard.read_bytes()[:100])
    done = run([*train, "seed=7"], project, check=False)
    line = assert_one_line_error(done, f"shard data/prepared/{meta['shards']['train'][1]['file']}")
    assert "cannot be read" in line and "rerun the prepare stage" in line
    client = MlflowClient(f"sqlite:///{project / 'mlflow.db'}")
    (failed,) = client.search_runs(["0", "1"], "params.seed = '7'")
    assert failed.info.status == "FAILED"


def test_shards_travel_through_a_dvc_remote(project: Path, tmp_path: Path):
    """The prepare stage's shards are one DVC output: pushed to a remote, pulled into a
    clone that never prepared them, byte for byte."""
    from tests.conftest import BIN_DIR

    dvc = str(BIN_DIR / "dvc")
    images = write_images(tmp_path / "images", per_class=20)
    settings = ["data=images", f"data.path={images}", *SHARDED]
    run([dvc, "exp", "run", "prepare", *(f"-S{s}" for s in settings)], project)
    shards = sorted((project / "data/prepared/shards").rglob("*.parquet"))
    assert len(shards) > 3
    run([dvc, "remote", "add", "-d", "store", str(tmp_path / "remote")], project)
    run([dvc, "push", "prepare"], project)
    run(["git", "add", "--all"], project)
    run(["git", "commit", "--quiet", "-m", "prepared in shards"], project)

    clone = tmp_path / "clone"
    run(["git", "clone", "--quiet", str(project), str(clone)], tmp_path)
    run([dvc, "pull", "prepare"], clone)

    pulled = sorted((clone / "data/prepared/shards").rglob("*.parquet"))
    assert [p.relative_to(clone) for p in pulled] == [p.relative_to(project) for p in shards]
    assert all(a.read_bytes() == b.read_bytes() for a, b in zip(pulled, shards, strict=True))
    meta = json.loads((clone / "data/prepared/meta.json").read_text())
    assert meta["format"] == "shards"
    run(
        [sys.executable, "pipelines/train.py", *settings, "model=mlp", "trainer.max_epochs=1"],
        clone,
    )


def test_a_table_in_shards_trains_evaluates_and_serves_raw_rows(project: Path, tmp_path: Path):
    """A table prepared in shards: trained from them, evaluated in its run, and the
    registered model predicts from raw rows of the file, its columns known from meta.json."""
    from tests.conftest import BIN_DIR
    from tests.unit.test_table_shards import SHARDED as TABLE_SHARDED
    from tests.unit.test_table_shards import write_table

    frame = write_table(tmp_path)
    data = ["data=table", f"data.path={tmp_path / 'table.csv'}", "data.target=label"]
    meta, trained = stages(project, [*data, *TABLE_SHARDED], "model=mlp", "trainer.max_epochs=5")
    assert len(meta["shards"]["train"]) > 5
    assert trained.info.status == "FINISHED" and trained.data.metrics["test/acc"] >= 0.85
    rows = tmp_path / "new.csv"
    frame.drop(columns=["label"]).head(20).to_csv(rows, index=False)
    out = tmp_path / "predicted.csv"
    predict = [str(BIN_DIR / "dlpipe"), "predict", "models:/table@champion", str(rows)]
    run([*predict, "--output", str(out)], project)
    predicted = pd.read_csv(out)
    assert len(predicted) == 20 and set(predicted["class"]) <= {"no", "yes"}


def test_a_folder_of_series_in_shards_trains_and_is_evaluated(project: Path, tmp_path: Path):
    from tests.unit.test_series_files import SHARDED as SERIES_SHARDED
    from tests.unit.test_series_files import write_series

    folder = write_series(tmp_path / "series")
    data = ["data=series_folder", f"data.path={folder}", *SERIES_SHARDED]
    _, trained = stages(project, data, "model=conv1d", "trainer.max_epochs=8")
    assert trained.info.status == "FINISHED" and trained.data.metrics["test/acc"] >= 0.8


def stages(project: Path, data: list[str], *training: str) -> tuple[dict, object]:
    """Prepare `data` (which must land in shards), train with `training`, evaluate; the
    prepared meta.json and the trained run."""
    run([sys.executable, "pipelines/prepare.py", *data], project)
    meta = json.loads((project / "data/prepared/meta.json").read_text())
    assert meta["format"] == "shards"
    run([sys.executable, "pipelines/train.py", *data, *training], project)
    run([sys.executable, "pipelines/evaluate.py", *data], project)
    record = json.loads((project / "models/run.json").read_text())
    return meta, MlflowClient(f"sqlite:///{project / 'mlflow.db'}").get_run(record["run_id"])
