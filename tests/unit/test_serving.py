"""Serving a model on raw inputs: the training's preprocessing applied again, predictions in
the data's terms, the model saved as settings and weights, INPUT files read, and which of
two models is better."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from dlpipe.config.schema.validate import validate
from dlpipe.data.arrays import load_prepared
from dlpipe.data.prepare import prepare
from dlpipe.errors import ConfigError, DataError
from dlpipe.record import RunRecord
from dlpipe.serving import transform
from dlpipe.serving.inputs import read_input
from dlpipe.serving.predictor import Predictor
from dlpipe.tasks.kinds import builtin
from dlpipe.tracking import champion
from dlpipe.training.checkpoints import build_network

MLP = {
    "_target_": "dlpipe.models.mlp.mlp",
    "name": "mlp",
    "hidden": [8],
    "activation": "relu",
    "dropout": 0.0,
    "batch_norm": False,
}


def trained_on(meta: dict, model: dict = MLP) -> RunRecord:
    """The record of a training of `model` on the prepared data `meta`."""
    return RunRecord(
        run_id="0" * 32,
        experiment="dlpipe",
        data=meta["data"],
        registry_name=None,
        model=model,
        task=meta["task"],
        input_shape=meta["input_shape"],
        num_outputs=meta["num_outputs"],
        classes=meta["classes"],
        heads=meta["heads"],
        shared=4,
        data_hash=meta["hash"],
        best_checkpoint="models/best.ckpt",
        best_checkpoint_sha256="c" * 64,
        monitor="val/loss",
        best_score=0.0,
    )


def served(meta: dict, model: dict = MLP) -> Predictor:
    """An untrained network for the prepared data `meta`, with its serving settings."""
    from dlpipe.serving.settings import describe

    torch.manual_seed(0)
    settings = describe(trained_on(meta, model), meta)
    return Predictor(build_network(settings), settings)


@pytest.fixture
def digits(make_cfg, tmp_path: Path):
    meta = prepare(make_cfg().data, tmp_path / "prepared")
    return served(meta), load_prepared(tmp_path / "prepared", ("test",))


@pytest.fixture
def table_file(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "size": rng.normal(10, 3, 120),
            "colour": rng.choice(["red", "green", "blue"], 120),
            "weight": rng.normal(2, 1, 120),
        }
    )
    frame["kind"] = np.where(frame["size"] > 10, "big", "small")
    path = tmp_path / "table.csv"
    frame.to_csv(path, index=False)
    return path


def test_raw_digits_become_the_prepared_inputs(digits):
    predictor, data = digits
    x = data.splits["test"][0]
    raw = transform.raw_inputs(predictor.settings, x)
    assert raw.dtype == np.float32 and raw.min() >= -1e-4 and raw.max() <= 16 + 1e-4
    assert torch.allclose(transform.model_input(predictor.settings, raw), x, atol=1e-5)
    flat = raw.reshape(len(raw), -1)  # one row of 64 pixels per image, as in a CSV
    assert torch.allclose(transform.model_input(predictor.settings, flat), x, atol=1e-5)


def test_classification_predictions_are_the_network_s_classes_and_probabilities(digits):
    predictor, data = digits
    x = data.splits["test"][0]
    found = predictor.predict(transform.raw_inputs(predictor.settings, x))
    classes = predictor.settings["classes"]
    assert list(found.columns) == ["class", *(f"prob_{name}" for name in classes)]
    with torch.no_grad():
        expected = predictor.network(x).softmax(1)
    assert np.allclose(found.iloc[:, 1:].to_numpy(), expected.numpy(), atol=1e-5)
    assert found["class"].tolist() == [classes[i] for i in expected.argmax(1).tolist()]


def test_saved_predictor_loads_weights_only_and_predicts_the_same(digits, tmp_path: Path):
    predictor, data = digits
    raw = transform.raw_inputs(predictor.settings, data.splits["test"][0])
    artifacts = predictor.save(tmp_path / "model")
    weights = torch.load(artifacts["weights"], weights_only=True)
    assert all(isinstance(value, torch.Tensor) for value in weights.values())
    loaded = Predictor.load(artifacts["settings"], artifacts["weights"])
    pd.testing.assert_frame_equal(loaded.predict(raw), predictor.predict(raw))


def test_wrong_shape_is_named_with_what_the_model_takes(digits):
    predictor, _ = digits
    with pytest.raises(DataError, match=r"samples shaped 10: the model takes 1x8x8 inputs"):
        predictor.predict(np.zeros((3, 10), dtype=np.float32))


def test_table_columns_encoded_as_prepared(make_cfg, table_file: Path, tmp_path: Path):
    cfg = make_cfg("data=table", f"data.path={table_file}", "data.target=kind")
    meta = prepare(cfg.data, tmp_path / "prepared")
    predictor = served(meta)
    assert predictor.settings["columns"] == [
        {"name": "size", "categories": None},
        {"name": "colour", "categories": ["blue", "green", "red"]},
        {"name": "weight", "categories": None},
    ]
    x = load_prepared(tmp_path / "prepared", ("test",)).splits["test"][0]
    raw = transform.raw_inputs(predictor.settings, x)
    assert list(raw.columns) == ["size", "colour", "weight"]
    assert torch.allclose(transform.model_input(predictor.settings, raw), x, atol=1e-5)
    found = predictor.predict(raw)
    assert list(found.columns) == ["class", "prob_big", "prob_small"]  # two classes, one logit
    assert np.allclose(found[["prob_big", "prob_small"]].sum(axis=1), 1)


def test_table_input_refusals_name_column_and_row(make_cfg, table_file: Path, tmp_path: Path):
    cfg = make_cfg("data=table", f"data.path={table_file}", "data.target=kind")
    predictor = served(prepare(cfg.data, tmp_path / "prepared"))
    rows = pd.DataFrame({"size": [1.0, 2.0], "colour": ["red", "purple"], "weight": [1.0, 1.0]})
    with pytest.raises(DataError, match=r"column 'colour', row 2: 'purple' is not one of"):
        predictor.predict(rows)
    with pytest.raises(DataError, match=r"^lacks column\(s\) weight: the model takes size, "):
        predictor.predict(rows.drop(columns="weight"))
    rows = rows.assign(colour="red", size=["big", 2.0])
    with pytest.raises(DataError, match=r"column 'size', row 1: 'big' is not a finite number"):
        predictor.predict(rows)


def test_regression_values_are_in_the_targets_units(make_cfg, tmp_path: Path):
    meta = prepare(make_cfg("data=linear", "data.normalise=true").data, tmp_path / "prepared")
    predictor = served(meta)
    x = load_prepared(tmp_path / "prepared", ("test",)).splits["test"][0]
    found = predictor.predict(transform.raw_inputs(predictor.settings, x))
    with torch.no_grad():
        scaled = predictor.network(x)[:, 0].numpy()
    y_mean, y_std = (np.ravel(meta["stats"][key])[0] for key in ("y_mean", "y_std"))
    assert list(found.columns) == ["value"]
    assert np.allclose(found["value"], scaled * y_std + y_mean, atol=1e-4)


def test_multitask_predictions_have_columns_per_head(make_cfg, tmp_path: Path):
    meta = prepare(make_cfg("data=located_digits").data, tmp_path / "prepared")
    predictor = served(meta)
    x = load_prepared(tmp_path / "prepared", ("test",)).splits["test"][0]
    found = predictor.predict(transform.raw_inputs(predictor.settings, x[:5]))
    probabilities = [f"digit_prob_{digit}" for digit in range(10)]
    assert list(found.columns) == ["digit", *probabilities, "position_0", "position_1"]
    assert len(found) == 5 and np.allclose(found[probabilities].sum(axis=1), 1)


def test_data_other_than_the_training_s_is_refused(digits):
    _, data = digits
    from dlpipe.serving.settings import describe

    with pytest.raises(DataError, match=r"is not the data run 0+ was trained on"):
        describe(trained_on(data.meta), {**data.meta, "hash": "another"})


def test_input_files_read_as_the_model_takes_them(digits, tmp_path: Path):
    predictor, data = digits
    settings = predictor.settings
    raw = transform.raw_inputs(settings, data.splits["test"][0][:4])
    np.savez(tmp_path / "x.npz", x=raw)
    pd.DataFrame(raw.reshape(4, -1)).add_prefix("pixel_").to_csv(tmp_path / "x.csv", index=False)
    folder = tmp_path / "images"
    folder.mkdir()
    for index, image in enumerate(raw):  # 8-bit grey, as a scanned digit would be
        pixels = np.round(image[0] / 16 * 255).astype(np.uint8)
        Image.fromarray(pixels, mode="L").save(folder / f"{index}.png")
    for name in ("x.npz", "x.csv"):
        found, carried = read_input(tmp_path / name, settings)
        assert carried is None and np.allclose(found, raw, atol=1e-5)
    found, carried = read_input(folder, settings)
    assert carried["file"].tolist() == ["0.png", "1.png", "2.png", "3.png"]
    assert np.allclose(found, raw, atol=16 / 255)


def test_kept_columns_and_arrays_travel_as_read_and_are_no_inputs(digits, tmp_path: Path):
    predictor, data = digits
    raw = transform.raw_inputs(predictor.settings, data.splits["test"][0][:3])
    ids, scores = ["a-1", "b-2", "c-3"], [0.5, float("nan"), 1e20]
    np.savez(tmp_path / "x.npz", x=raw, id=np.array(ids), score=np.array(scores))
    table = pd.DataFrame(raw.reshape(3, -1)).add_prefix("pixel_")
    table.insert(0, "id", ids)
    table["score"] = scores
    table.to_csv(tmp_path / "x.csv", index=False)
    for name in ("x.npz", "x.csv"):
        found, carried = read_input(tmp_path / name, predictor.settings, ["score", "id"])
        assert np.allclose(found, raw, atol=1e-5)
        assert list(carried.columns) == ["score", "id"] and carried["id"].tolist() == ids
        assert carried["score"][0] == "0.5" and carried["score"].isna()[1]
        assert carried["score"][2] == "1e+20"


@pytest.mark.parametrize(
    "name,keep,message",
    [
        ("x.csv", ["name"], r"has no column 'name' to keep \(it has id, pixel_0, "),
        ("x.npz", ["name"], r"has no array 'name' to keep \(it has x, id, pairs\)"),
        ("x.npz", ["pairs"], r"array 'pairs' is shaped 3x2: keep arrays of one value per"),
        ("images", ["id"], "holds images, which have no columns to keep"),
    ],
)
def test_what_cannot_be_kept_is_named(digits, tmp_path: Path, name, keep, message):
    predictor, _ = digits
    x = np.zeros((3, 1, 8, 8), dtype=np.float32)
    np.savez(tmp_path / "x.npz", x=x, id=np.arange(3), pairs=np.zeros((3, 2)))
    table = pd.DataFrame(x.reshape(3, -1)).add_prefix("pixel_")
    table.insert(0, "id", range(3))
    table.to_csv(tmp_path / "x.csv", index=False)
    (tmp_path / "images").mkdir()
    Image.fromarray(np.zeros((8, 8), dtype=np.uint8), mode="L").save(tmp_path / "images/0.png")
    with pytest.raises(DataError, match=message):
        read_input(tmp_path / name, predictor.settings, keep)


@pytest.mark.parametrize(
    "name,content,message",
    [
        ("x.txt", b"1,2", "is not a table, .npz or image file"),
        ("x.csv", b"a,b\n1,2\n", "holds samples shaped 2: the model takes 1x8x8 inputs"),
        ("x.csv", b"", "is empty"),
        ("missing.npz", None, "does not exist"),
    ],
)
def test_unreadable_or_mismatched_input_is_named(digits, tmp_path, name, content, message):
    predictor, _ = digits
    if content is not None:
        (tmp_path / name).write_bytes(content)
    with pytest.raises(DataError, match=message):
        read_input(tmp_path / name, predictor.settings)


@pytest.mark.parametrize(
    "metric,higher",
    [("test/acc", True), ("test/f1_macro", True), ("test/digit/acc", True), ("test/r2", True),
     ("test/loss", False), ("test/rmse", False), ("test/position/mae", False)],
)  # fmt: skip
def test_metric_direction_follows_its_name(metric, higher):
    assert champion.higher_is_better(metric) is higher
    assert champion.by_name(metric).beats(2.0, 1.0) is higher
    assert not champion.by_name(metric).beats(1.0, 1.0)  # a tie keeps the champion


def test_task_metric_and_unknown_metric():
    assert champion.judged(builtin("classification")).metric == "test/acc"
    assert champion.judged(builtin("forecasting")).metric == "test/rmse"
    heads = [{"name": "digit", "task": "classification"}]
    assert champion.judged(builtin("multitask"), heads).metric == "test/digit/acc"
    with pytest.raises(ConfigError, match=r"registry\.metric must be a test metric whose name"):
        champion.higher_is_better("test/speed")


@pytest.mark.parametrize(
    "override,message",
    [
        ("registry.metric=test/speed", "registry.metric must be a test metric whose name says"),
        ("registry.name=my/model", "registry.name must be a name of letters, digits"),
    ],
)
def test_registry_settings_are_checked(make_cfg, override, message):
    with pytest.raises(ConfigError, match=message):
        validate(make_cfg(override))


def test_table_input_keeps_the_model_s_columns_typed(make_cfg, table_file, tmp_path: Path):
    cfg = make_cfg("data=table", f"data.path={table_file}", "data.target=kind")
    predictor = served(prepare(cfg.data, tmp_path / "prepared"))
    found, carried = read_input(table_file, predictor.settings)  # its target column is left out
    assert carried is None and list(found.columns) == ["size", "colour", "weight"]
    assert pd.api.types.is_string_dtype(found["colour"])
    assert found["size"].dtype == found["weight"].dtype == np.float64
    assert len(predictor.predict(found)) == 120
