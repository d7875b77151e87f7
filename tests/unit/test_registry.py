"""Registering and promoting models in a real (temporary) sqlite store, with untrained
networks whose runs carry made-up test metrics."""

import logging
from pathlib import Path
from types import SimpleNamespace

import mlflow
import numpy as np
import pandas as pd
import pytest
import torch

from dlpipe import registry, tracking
from dlpipe.data.arrays import load_prepared
from dlpipe.data.prepare import prepare
from dlpipe.errors import ConfigError, TrackingError
from dlpipe.serving import transform
from dlpipe.serving.inputs import read_input
from tests.unit.test_serving import served


@pytest.fixture
def setting_up(make_cfg, tmp_path: Path, monkeypatch):
    """A client of a new store, a digits predictor and its test inputs."""
    monkeypatch.chdir(tmp_path)  # the store keeps artifacts under ./mlruns
    client = tracking.get_client(f"sqlite:///{tmp_path / 'mlflow.db'}")
    meta = prepare(make_cfg().data, tmp_path / "prepared")
    x = load_prepared(tmp_path / "prepared", ("test",)).splits["test"][0]
    return client, served(meta), x


def publish(client, predictor, x: torch.Tensor, acc: float, promote: bool = True) -> str:
    """A finished run scoring `acc`, its model published; the run's id."""
    run_id = client.create_run(tracking.experiment_id(client, "test")).info.run_id
    client.log_metric(run_id, "test/acc", acc)
    client.set_terminated(run_id)
    predictor.settings["run_id"] = run_id
    settings = SimpleNamespace(name="digits", metric=None, promote=promote)
    registry.publish(client, predictor, x, settings)
    return run_id


def champion(client) -> str:
    return str(client.get_registered_model("digits").aliases["champion"])


def test_published_model_is_the_champion_and_predicts_raw_inputs(setting_up, caplog):
    client, predictor, x = setting_up
    with caplog.at_level(logging.INFO, logger="dlpipe.registry"):
        run_id = publish(client, predictor, x, acc=0.9)
    assert [record.message for record in caplog.records if record.name == "dlpipe.registry"] == [
        f"registered digits version 1 (run {run_id})",
        f"promoted digits version 1 (run {run_id}) to champion: there was none (test/acc 0.9000)",
    ]
    version = client.get_model_version("digits", "1")
    assert version.tags[registry.METRIC_TAG] == "test/acc" and champion(client) == "1"
    mlflow.set_tracking_uri(client.tracking_uri)
    model = mlflow.pyfunc.load_model("models:/digits@champion")
    raw = transform.raw_inputs(predictor.settings, x)
    pd.testing.assert_frame_equal(model.predict(raw), predictor.predict(raw))
    assert model.metadata.get_input_schema().inputs[0].shape == (-1, 1, 8, 8)


def test_promotion_compares_on_the_metric_and_says_so(setting_up):
    client, predictor, x = setting_up
    first = publish(client, predictor, x, acc=0.9)
    worse = publish(client, predictor, x, acc=0.8, promote=False)
    better = publish(client, predictor, x, acc=0.95, promote=False)
    message = registry.promote_version(client, registry.version_of_run(client, worse), "test/acc")
    assert message == (
        f"digits version 1 (run {first}) stays champion: test/acc 0.9000 against 0.8000 of "
        f"version 2 (run {worse}); higher is better"
    )
    assert champion(client) == "1"
    message = registry.promote_version(client, registry.version_of_run(client, better), "test/acc")
    assert message == (
        f"promoted digits version 3 (run {better}) to champion: test/acc 0.9500 against 0.9000 "
        f"of version 1 (run {first}); higher is better"
    )
    assert champion(client) == "3"


def test_unknown_run_or_metric_is_named(setting_up):
    client, predictor, x = setting_up
    run_id = publish(client, predictor, x, acc=0.9)
    with pytest.raises(TrackingError, match=f"run {'0' * 32} is not in tracking store"):
        registry.version_of_run(client, "0" * 32)
    with pytest.raises(TrackingError, match="has no registered model version of model 'other'"):
        registry.version_of_run(client, run_id, "other")
    version = registry.version_of_run(client, run_id)
    with pytest.raises(
        ConfigError, match=r"has no metric test/loss \(its test metrics: test/acc\)"
    ):
        registry.promote_version(client, version, "test/loss")


def test_unregistered_model_is_logged_to_its_run(setting_up):
    client, predictor, x = setting_up
    run_id = client.create_run(tracking.experiment_id(client, "test")).info.run_id
    predictor.settings["run_id"] = run_id
    settings = SimpleNamespace(name=None, metric=None, promote=True)
    registry.publish(client, predictor, x, settings)
    (logged,) = client.get_run(run_id).outputs.model_outputs
    mlflow.set_tracking_uri(client.tracking_uri)
    model = mlflow.pyfunc.load_model(f"models:/{logged.model_id}")
    assert len(model.predict(np.zeros((2, 64), dtype=np.float32).reshape(2, 1, 8, 8))) == 2
    assert client.search_registered_models() == []


def test_table_model_takes_the_table_s_rows(make_cfg, setting_up, tmp_path: Path):
    client, _, _ = setting_up
    path = tmp_path / "table.csv"
    frame = pd.DataFrame({"size": [1.5, 2.0, 3.5, 4.0] * 10, "colour": ["red", "blue"] * 20})
    frame.assign(kind=["a", "b", "a", "b"] * 10).to_csv(path, index=False)
    cfg = make_cfg("data=table", f"data.path={path}", "data.target=kind")
    meta = prepare(cfg.data, tmp_path / "table")
    x = load_prepared(tmp_path / "table", ("test",)).splits["test"][0]
    predictor = served(meta)
    publish(client, predictor, x, acc=0.5)
    mlflow.set_tracking_uri(client.tracking_uri)
    model = mlflow.pyfunc.load_model("models:/digits@champion")
    rows, _ = read_input(path, predictor.settings)
    pd.testing.assert_frame_equal(model.predict(rows), predictor.predict(rows))
    assert [spec.name for spec in model.metadata.get_input_schema().inputs] == ["size", "colour"]
