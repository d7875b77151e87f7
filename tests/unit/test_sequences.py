"""Series from files the tests write: wide (a row per series) and long (a row per id and
time step), of one or different lengths, prepared, loaded and served."""

import numpy as np
import pandas as pd
import pytest
import torch

from dlpipe.data.arrays import load_prepared
from dlpipe.data.checks import check_split
from dlpipe.data.prepare import prepare
from dlpipe.data.sequences import series_long, series_rows, z_normalised
from dlpipe.errors import DataError
from dlpipe.serving import transform
from dlpipe.tasks.metrics import last_value_baseline


def wide(tmp_path, rows: list[str], name: str = "wide.csv") -> str:
    """A UCR-style CSV: a label column, then t0..t3."""
    path = tmp_path / name
    path.write_text("label,t0,t1,t2,t3\n" + "\n".join(rows) + "\n")
    return str(path)


def long(tmp_path, rows: list[str]) -> str:
    path = tmp_path / "long.csv"
    path.write_text("id,time,a,b,label\n" + "\n".join(rows) + "\n")
    return str(path)


def ucr_like(tmp_path, count: int = 40, ragged: bool = False) -> str:
    """Rising and falling series of two classes, every third one shorter when `ragged`."""
    rows = []
    for index in range(count):
        values = np.arange(4.0) * (1 if index % 2 else -1) + index
        cells = [f"{value:g}" for value in values]
        if ragged and index % 3 == 0:
            cells[-1] = ""
        rows.append(",".join(["up" if index % 2 else "down", *cells]))
    return wide(tmp_path, rows)


def test_a_wide_row_is_one_series_of_one_channel(tmp_path):
    path = wide(tmp_path, ["a,1,2,3,4", "b,4,3,2,1", "a,0,1,2,3"])
    data = series_rows(path, target="label")
    assert data.x.shape == (3, 4, 1) and data.x.dtype == np.float32
    assert data.x[1, :, 0].tolist() == [4, 3, 2, 1]
    assert data.classes == ["a", "b"] and data.y.tolist() == [0, 1, 0]
    assert not data.padded


def test_wide_regression_and_forecasting(tmp_path):
    path = wide(tmp_path, ["0.5,1,2,3,4", "1.5,4,3,2,1"])
    regression = series_rows(path, target="label", task="regression")
    assert regression.y.tolist() == [[0.5], [1.5]] and regression.x.shape == (2, 4, 1)
    # Forecasting: the last `horizon` values from the steps before; the label is left out.
    forecast = series_rows(path, target="label", task="forecasting", horizon=2)
    assert forecast.x[:, :, 0].tolist() == [[1, 2], [4, 3]]
    assert forecast.y.tolist() == [[3, 4], [2, 1]] and forecast.task == "forecasting"


def test_long_rows_are_series_of_channels_in_time_order(tmp_path):
    path = long(tmp_path, ["s1,1,1,10,x", "s2,0,5,50,y", "s1,0,0,0,x", "s2,1,6,60,y"])
    data = series_long(path, id="id", time="time", values=["a", "b"], target="label")
    assert data.x.shape == (2, 2, 2)
    assert data.x[0].tolist() == [[0, 0], [1, 10]] and data.x[1].tolist() == [[5, 50], [6, 60]]
    assert data.classes == ["x", "y"] and data.y.tolist() == [0, 1]


def test_ragged_series_need_a_rule_and_are_padded_or_cut(tmp_path):
    path = wide(tmp_path, ["a,1,2,3,4", "b,4,3,2,1", "a,1,2,,"])
    with pytest.raises(DataError) as raised:
        series_rows(path, target="label")
    message = str(raised.value)
    assert "row 3 has 2 steps, most have 4" in message
    assert "data.ragged=pad" in message and "data.ragged=truncate" in message
    padded = series_rows(path, target="label", ragged="pad")
    assert padded.padded and padded.x.shape == (3, 4, 1)
    assert np.isnan(padded.x[2, 2:]).all() and padded.x[2, :2, 0].tolist() == [1, 2]
    cut = series_rows(path, target="label", ragged="truncate")
    assert not cut.padded and cut.x[:, :, 0].tolist() == [[1, 2], [4, 3], [1, 2]]
    # Long: ids with different step counts alike.
    path = long(tmp_path, ["s1,0,1,1,x", "s1,1,2,2,x", "s2,0,3,3,y"])
    with pytest.raises(DataError, match=r"id 's2' has 1 steps"):
        series_long(path, id="id", time="time", values=["a", "b"], target="label")
    padded = series_long(
        path, id="id", time="time", values=["a", "b"], target="label", ragged="pad"
    )
    assert padded.padded and np.isnan(padded.x[1, 1]).all()


@pytest.mark.parametrize(
    ("rows", "source", "expected"),
    [
        # A gap in the middle of a wide series, named by row and column.
        (["a,1,,3,4"], "wide", "row 1, column 't1': empty in the middle of the series"),
        # A value that is not a number.
        (["a,1,x,3,4"], "wide", "column 't1', row 1: 'x' is not a finite number"),
        # A time that is not a number.
        (["s1,soon,1,1,x"], "long", "column 'time', row 1: 'soon' is not a finite number"),
        # A target that changes within a series.
        (["s1,0,1,1,x", "s1,1,1,1,y"], "long", "column 'label': id 's1' holds 'x' and 'y'"),
        # The same time twice in a series.
        (["s1,0,1,1,x", "s1,0,1,1,x"], "long", "id 's1' has time 0 twice"),
    ],
)
def test_bad_series_are_named(tmp_path, rows, source, expected):
    with pytest.raises(DataError, match=expected.replace("(", r"\(")):
        if source == "wide":
            series_rows(wide(tmp_path, rows), target="label")
        else:
            series_long(long(tmp_path, rows), id="id", time="time", values="a", target="label")


@pytest.mark.parametrize(
    ("settings", "setting"),
    [
        ({"id": "series"}, "data.id"),
        ({"time": "when"}, "data.time"),
        ({"values": ["a", "c"]}, "data.values"),
    ],
)
def test_a_missing_long_column_is_named(tmp_path, settings, setting):
    path = long(tmp_path, ["s1,0,1,1,x"])
    given = {"id": "id", "time": "time", "values": "a", "target": "label", **settings}
    with pytest.raises(DataError, match=f"has no column .*: set {setting}"):
        series_long(path, **given)


def test_a_split_column_assigns_series(tmp_path):
    path = tmp_path / "long.csv"
    path.write_text(
        "id,time,a,label,part\ns1,0,1,x,train\ns1,1,2,x,train\ns2,0,3,y,test\ns2,1,4,y,test\n"
    )
    data = series_long(path, id="id", time="time", values="a", target="label", split_column="part")
    assert data.split.tolist() == ["train", "test"]
    rows = wide(tmp_path, ["a,1,2,3,4", "b,4,3,2,1"], "rows.csv")
    frame = pd.read_csv(rows).assign(part=["val", "train"])
    frame.to_csv(rows, index=False)
    data = series_rows(rows, target="label", split_column="part")
    assert data.split.tolist() == ["val", "train"] and data.x.shape == (2, 4, 1)


def test_padded_series_are_prepared_loaded_and_served(make_cfg, tmp_path):
    path = ucr_like(tmp_path, ragged=True)
    cfg = make_cfg("data=series_rows", f"data.path={path}", "data.target=label", "data.ragged=pad")
    meta = prepare(cfg.data, tmp_path / "prepared")
    assert meta["padded"] and meta["input_shape"] == [4, 1]
    # Statistics leave the padding out; the padding stays NaN once standardised.
    assert np.isfinite(meta["stats"]["x_mean"]).all() and np.isfinite(meta["stats"]["x_std"]).all()
    data = load_prepared(tmp_path / "prepared")
    x = torch.cat([data.splits[name][0] for name in data.splits])
    padding = torch.isnan(x).all(dim=2)
    assert padding[:, -1].sum() > 0 and not torch.isnan(x[~padding]).any()
    # A NaN anywhere but trailing padding is damage.
    broken = x.clone()
    broken[0, 0, 0] = float("nan")
    with pytest.raises(DataError, match="other than padding at its end"):
        check_split(tmp_path / "x.npz", broken, torch.zeros(len(x), dtype=torch.long), meta)
    # A served model takes a shorter series, ending in empty cells, as the training did.
    settings = {"columns": None, "input_shape": [4, 1], "stats": meta["stats"], "padded": True}
    served = transform.model_input(settings, np.array([[1.0, 2.0, 3.0, np.nan]]))
    assert torch.isnan(served[0, 3]).all() and torch.isfinite(served[0, :3]).all()
    with pytest.raises(DataError, match="sample 1 holds NaN or inf other than at its end"):
        transform.model_input(settings, np.array([[1.0, np.nan, 3.0, 4.0]]))
    # The last-value baseline of a padded series is its last value, not the padding.
    assert last_value_baseline(served, 1).isfinite().all()


def test_a_nan_inside_a_padded_source_series_is_refused(make_cfg, tmp_path):
    path = ucr_like(tmp_path, ragged=True)
    frame = pd.read_csv(path)
    frame["t0"] = frame["t0"].astype(float)
    frame.loc[0, "t0"] = np.inf
    frame.to_csv(path, index=False)
    cfg = make_cfg("data=series_rows", f"data.path={path}", "data.target=label", "data.ragged=pad")
    with pytest.raises(DataError, match="row 1: inf is not a finite number"):
        prepare(cfg.data, tmp_path / "prepared")


def test_series_normalisation_scales_each_series_on_its_own(make_cfg, tmp_path):
    path = ucr_like(tmp_path, ragged=True)
    cfg = make_cfg(
        "data=series_rows",
        f"data.path={path}",
        "data.target=label",
        "data.ragged=pad",
        "data.normalise=series",
    )
    meta = prepare(cfg.data, tmp_path / "prepared")
    assert "x_mean" not in meta["stats"]
    x = load_prepared(tmp_path / "prepared").splits["train"][0].numpy()
    assert np.allclose(np.nanmean(x, axis=1), 0, atol=1e-5)
    assert np.allclose(np.nanstd(x, axis=1), 1, atol=1e-4)
    assert np.isnan(x).any()  # the padding stays
    # A constant series becomes zeros; a served model scales its raw input alike.
    assert z_normalised(np.full((1, 5, 2), 7.0)).tolist() == np.zeros((1, 5, 2)).tolist()
    settings = {"columns": None, "input_shape": [4, 1], "stats": {}, "series_normalised": True}
    served = transform.model_input(settings, np.array([[10.0, 20.0, 30.0, 40.0]]))
    assert np.allclose(served.numpy().ravel(), z_normalised(np.arange(1.0, 5.0)[None]).ravel())
