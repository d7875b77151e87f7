"""Registering and promoting models in a real (temporary) sqlite store, with untrained
networks whose runs carry made-up test metrics."""

import logging
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import torch

from dlpipe.data.arrays import load_prepared
from dlpipe.data.prepare import prepare
from dlpipe.errors import ConfigError, TrackingError
from dlpipe.serving import transform
from dlpipe.serving.inputs import read_input
from dlpipe.tasks.kinds import builtin, replace
from dlpipe.tracking import client as tracking
from dlpipe.tracking import registry
from dlpipe.tracking.champion import Criterion, judged, registered_name
from tests.unit.test_serving import served


@pytest.fixture
def setting_up(make_cfg, tmp_path: Path, monkeypatch):
    """A client of a new store, a digits predictor and its test inputs."""
    monkeypatch.chdir(tmp_path)  # the store keeps artifacts under ./mlruns
    client = tracking.get_client(f"sqlite:///{tmp_path / 'mlflow.db'}")
    meta = prepare(make_cfg().data, tmp_path / "prepared")
    x = load_prepared(tmp_path / "prepared", ("test",)).splits["test"][0]
    return client, served(meta), x


def publish(
    client,
    predictor,
    x: torch.Tensor,
    acc: float,
    promote: bool = True,
    metric: str = "test/acc",
    criterion: Criterion | None = None,
) -> str:
    """A finished run scoring `acc` on `metric`, its model published (judged by `criterion`,
    None: its task's own); the run's id."""
    run_id = client.create_run(tracking.experiment_id(client, "test")).info.run_id
    client.log_metric(run_id, metric, acc)
    client.set_terminated(run_id)
    predictor.settings["run_id"] = run_id
    registry.publish(client, predictor, x, "digits", criterion, promote=promote)
    return run_id


def champion(client) -> str:
    return str(client.get_registered_model("digits").aliases["champion"])


def test_published_model_is_the_champion_and_predicts_raw_inputs(setting_up, caplog):
    client, predictor, x = setting_up
    with caplog.at_level(logging.INFO, logger="dlpipe.tracking.registry"):
        run_id = publish(client, predictor, x, acc=0.9)
    assert [
        record.message for record in caplog.records if record.name == "dlpipe.tracking.registry"
    ] == [
        f"registered digits version 1 (run {run_id})",
        f"promoted digits version 1 (run {run_id}) to champion: there was none (test/acc 0.9000)",
    ]
    version = client.get_model_version("digits", "1")
    assert version.tags[registry.METRIC_TAG] == "test/acc" and champion(client) == "1"
    assert version.tags[registry.TASK_TAG] == "classification"
    assert all(len(version.tags[tag]) == 64 for tag in (registry.INPUTS_TAG, registry.OUTPUTS_TAG))
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


def test_a_task_s_own_champion_metric_and_its_way_decide_promotion(setting_up):
    """A task of the user's names its champion metric, whose name says neither way, and
    that lower is better: evaluate's promotion and a later `dlpipe promote` both follow it."""
    client, predictor, x = setting_up
    kind = replace(builtin("classification"), champion="wrongness", champion_mode="min")
    criterion = judged(kind)
    wrongness = {"metric": "test/wrongness", "criterion": criterion}
    publish(client, predictor, x, acc=0.3, **wrongness)
    lower = publish(client, predictor, x, acc=0.2, **wrongness)
    assert champion(client) == "2"
    version = registry.version_of_run(client, lower)
    assert (version.tags[registry.METRIC_TAG], version.tags[registry.MODE_TAG]) == (
        "test/wrongness",
        "min",
    )
    higher = publish(client, predictor, x, acc=0.25, promote=False, **wrongness)
    version = registry.version_of_run(client, higher)
    message = registry.promote_version(client, version, "test/wrongness")
    assert message == (
        f"digits version 2 (run {lower}) stays champion: test/wrongness 0.2000 against "
        f"0.2500 of version 3 (run {higher}); lower is better"
    )


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
    registry.publish(client, predictor, x, None)
    run = client.get_run(run_id)
    (logged,) = run.outputs.model_outputs
    # Filed in the run's experiment, whose runs table lists it (its Models column).
    found = client.get_logged_model(logged.model_id)
    assert (found.experiment_id, found.source_run_id) == (run.info.experiment_id, run_id)
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


def served_data(make_cfg, folder: Path, *overrides: str):
    """A predictor for the data `overrides` select, prepared into `folder`, and its test inputs."""
    meta = prepare(make_cfg(*overrides).data, folder)
    return served(meta), load_prepared(folder, ("test",)).splits["test"][0]


def registry_lines(caplog) -> list[str]:
    return [
        record.message for record in caplog.records if record.name == "dlpipe.tracking.registry"
    ]


def test_versions_of_another_task_or_inputs_are_never_compared(
    make_cfg, setting_up, tmp_path: Path, caplog
):
    client, predictor, x = setting_up
    path = tmp_path / "shapes.csv"
    pd.DataFrame({"size": [1.5, 2.0, 3.5, 4.0] * 10, "kind": ["a", "b"] * 20}).to_csv(path)
    table, x_table = served_data(
        make_cfg, tmp_path / "table", "data=table", f"data.path={path}", "data.target=kind"
    )
    linear, x_linear = served_data(make_cfg, tmp_path / "linear", "data=linear")
    first = publish(client, predictor, x, acc=0.5)
    with caplog.at_level(logging.INFO, logger="dlpipe.tracking.registry"):
        other_inputs = publish(client, table, x_table, acc=0.99)
        regression = publish(client, linear, x_linear, acc=0.1, metric="test/rmse")
    stays = f"digits version 1 (run {first}) stays champion, not compared with version"
    name_it = "; register that model under a name of its own (registry.name)"
    _, inputs, _, task = registry_lines(caplog)
    assert inputs.startswith(f"{stays} 2 (run {other_inputs}): its inputs differ from the ")
    assert inputs.endswith(name_it) and "champion's (signature inputs " in inputs
    assert task == (
        f"{stays} 3 (run {regression}): it is a regression model, the champion a "
        f"classification one{name_it}"
    )
    assert champion(client) == "1"


def test_versions_registered_without_the_tags_are_told_apart_by_their_model(
    make_cfg, setting_up, tmp_path: Path
):
    client, predictor, x = setting_up
    publish(client, predictor, x, acc=0.5)
    for tag in registry.IDENTITY_TAGS:
        client.delete_model_version_tag("digits", "1", tag)
    linear, x_linear = served_data(make_cfg, tmp_path / "linear", "data=linear")
    publish(client, linear, x_linear, acc=0.1, promote=False, metric="test/rmse")
    message = registry.promote_version(client, client.get_model_version("digits", "2"), "test/rmse")
    assert "it is a regression model, the champion a classification one" in message
    better = publish(client, predictor, x, acc=0.9, promote=False)
    message = registry.promote_version(client, registry.version_of_run(client, better), "test/acc")
    assert message.startswith(f"promoted digits version 3 (run {better}) to champion: test/acc")
    assert champion(client) == "3"


@pytest.mark.parametrize(
    "name,data,expected",
    [
        ("auto", {"name": "digits", "canvas": 16}, "digits"),
        ("auto", {"name": "table", "path": "data/wine.csv"}, "wine"),
        ("auto", {"name": "npz", "path": "my arrays (2).npz"}, "my_arrays_2"),
        ("mine", {"name": "table", "path": "wine.csv"}, "mine"),
        (None, {"name": "table", "path": "wine.csv"}, None),
    ],
)
def test_a_model_is_named_after_its_data_set(name, data, expected):
    assert registered_name(name, data) == expected


def test_an_image_folder_names_its_model(tmp_path: Path):
    folder = tmp_path / "pets.v2"
    folder.mkdir()
    assert registered_name("auto", {"name": "images", "path": f"{folder}/"}) == "pets.v2"
