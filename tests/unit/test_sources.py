"""Data sources: the built-in sets and the user's files, read from small files the tests write."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from dlpipe.data import arrays_file, images, series, synthetic, tables
from dlpipe.data.sources import digits, list_sources, load_source, source_settings
from dlpipe.errors import ConfigError, DataError
from tests.conftest import CONF_DIR


def test_every_source_has_a_config():
    configs = sorted(p.stem for p in (CONF_DIR / "data").glob("*.yaml"))
    assert list_sources() == configs


def test_digits_on_a_canvas_are_the_same_digits_moved():
    plain, placed = digits(keep=[3, 5]), digits(keep=[3, 5], canvas=12, seed=1)
    assert placed.x.shape == (len(plain.x), 1, 12, 12) and placed.classes == ["3", "5"]
    assert placed.y.tolist() == plain.y.tolist()
    # Same ink, somewhere on the canvas, at spots that vary between images.
    assert np.allclose(placed.x.sum(axis=(1, 2, 3)), plain.x.sum(axis=(1, 2, 3)))
    assert len({tuple(np.argwhere(image[0])[0]) for image in placed.x[:20]}) > 1
    with pytest.raises(ConfigError, match=r"data\.canvas must be a whole number of pixels >= 8"):
        digits(canvas=4)


def test_linear_is_three_x_plus_one_with_noise():
    raw = synthetic.linear(samples=500, noise=0.1)
    slope, intercept = np.polyfit(raw.x[:, 0], raw.y[:, 0], 1)
    assert slope == pytest.approx(3, abs=0.05) and intercept == pytest.approx(1, abs=0.05)
    assert raw.task == "regression" and raw.y.shape == (500, 1)


def test_weather_is_the_truth_table_of_go_outside():
    raw = synthetic.weather(copies=1)
    rows = {tuple(int(v) for v in row): label for row, label in zip(raw.x, raw.y, strict=True)}
    assert len(rows) == 8
    assert rows[(0, 1, 1)] == rows[(1, 1, 0)] == 1  # light and (warm or clear)
    assert rows[(1, 0, 1)] == rows[(0, 1, 0)] == 0
    assert raw.num_outputs == 1  # two classes: one logit


def test_waves_are_balanced_sequences():
    raw = synthetic.waves(samples=40, steps=16)
    assert raw.x.shape == (40, 16, 1) and np.bincount(raw.y).tolist() == [10, 10, 10, 10]


def test_windows_pair_each_run_of_steps_with_what_follows():
    raw = series.windows(np.arange(20.0), window=5, horizon=2, name="ramp")
    assert raw.x.shape == (14, 5, 1) and raw.y.shape == (14, 2)
    assert raw.x[0, :, 0].tolist() == [0, 1, 2, 3, 4] and raw.y[0].tolist() == [5, 6]
    with pytest.raises(DataError, match=r"ramp has 20 steps: too few for windows of 15 \+ 2"):
        series.windows(np.arange(20.0), window=15, horizon=2, name="ramp")


def test_sunspots_come_from_the_installed_package():
    raw = series.sunspots(window=24)
    assert raw.task == "forecasting" and raw.x.shape == (309 - 24, 24, 1)


def write_csv(path: Path, rows: dict) -> Path:
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def test_table_encodes_categories_and_names_classes(tmp_path: Path):
    path = write_csv(
        tmp_path / "pets.csv",
        {
            "weight": [4.0, 30.0, 5.0],
            "colour": ["black", "brown", "black"],
            "kind": ["cat", "dog", "cat"],
        },
    )
    raw = tables.table(str(path), target="kind")
    assert raw.classes == ["cat", "dog"] and raw.y.tolist() == [0, 1, 0]
    # weight, then colour one-hot (black, brown)
    assert raw.x.tolist() == [[4, 1, 0], [30, 0, 1], [5, 1, 0]]


def test_parquet_regression_table(tmp_path: Path):
    path = tmp_path / "houses.parquet"
    pd.DataFrame({"rooms": [2, 3, 4], "price": [100.0, 150.0, 210.0]}).to_parquet(path)
    raw = tables.table(str(path), target="price", task="regression")
    assert raw.y.tolist() == [[100.0], [150.0], [210.0]] and raw.x.shape == (3, 1)


@pytest.mark.parametrize(
    "rows,target,message",
    [
        ({"a": [1, 2]}, "label", r"pets.csv has no column 'label' \(it has a\): set data.target"),
        (
            {"a": [1, "x", 3], "label": [0, 1, 0]},
            "label",
            r"column 'a', row 2: 'x' is not a finite",
        ),
        (
            {"a": [1.0, None, 3.0], "label": [0, 1, 0]},
            "label",
            r"column 'a', row 2: an empty or missing",
        ),
        (
            {"a": [1, 2, 3], "label": ["x", None, "y"]},
            "label",
            r"column 'label', row 2: the label is an empty or missing value; fix or drop that row",
        ),
        ({"a": [1, 2, 3], "label": [0, 1, np.inf]}, "label", r"row 3: the label is inf"),
        (
            {"a": [1, 2, 3], "b": ["red", None, "blue"], "label": [0, 1, 0]},
            "label",
            r"column 'b', row 2: the category is an empty or missing value",
        ),
        ({"a": [1, np.inf], "label": [0, 1]}, "label", r"column 'a', row 2: inf is not a finite"),
        # Finite as read (float64), infinite as stored (float32).
        (
            {"a": [1.0, 2.0, 1e308], "label": [0, 1, 0]},
            "label",
            r"column 'a', row 3: 1e\+308 is beyond float32's range \(±3.4e\+38\), the type "
            r"data is prepared in; rescale that column or fix that row",
        ),
        (
            {"a": [1, 2], "price": [3.0, -1e39]},
            "price",
            r"column 'price', row 2: -1e\+39 is beyond",
        ),
    ],
)
def test_bad_table_names_file_column_and_row(tmp_path: Path, rows, target, message):
    path = write_csv(tmp_path / "pets.csv", rows)
    task = "regression" if target == "price" else "classification"
    with pytest.raises(DataError, match=message):
        tables.table(str(path), target=target, task=task)


def test_missing_or_empty_table_is_named(tmp_path: Path):
    with pytest.raises(DataError, match=r"nowhere.csv does not exist: set data.path"):
        tables.table(str(tmp_path / "nowhere.csv"), target="y")
    (tmp_path / "empty.csv").write_text("a,y\n")
    with pytest.raises(DataError, match=r"empty.csv holds no rows: add a header row and data"):
        tables.table(str(tmp_path / "empty.csv"), target="y")
    (tmp_path / "blank.csv").write_text("")
    with pytest.raises(DataError, match=r"blank.csv is empty: add a header row and data rows"):
        tables.table(str(tmp_path / "blank.csv"), target="y")


def write_images(folder: Path) -> None:
    for name, shade in (("dark", 20), ("light", 230)):
        (folder / name).mkdir(parents=True)
        for index in range(3):
            Image.new("L", (10, 12), color=shade + index).save(folder / name / f"{index}.png")


def test_image_folder_reads_a_class_per_subfolder(tmp_path: Path):
    write_images(tmp_path / "shades")
    raw = images.image_folder(str(tmp_path / "shades"), size=[8, 6], channels=3)
    assert raw.classes == ["dark", "light"] and raw.y.tolist() == [0, 0, 0, 1, 1, 1]
    assert raw.x.shape == (6, 3, 8, 6) and raw.x[0].max() < 0.1 < 0.9 < raw.x[3].min()


def test_unreadable_image_is_named(tmp_path: Path):
    write_images(tmp_path / "shades")
    (tmp_path / "shades" / "dark" / "broken.png").write_bytes(b"not an image")
    with pytest.raises(DataError, match=r"image .*dark/broken.png cannot be read"):
        images.image_folder(str(tmp_path / "shades"))


def test_npz_arrays_for_classification_and_regression(tmp_path: Path):
    path = tmp_path / "points.npz"
    np.savez(path, x=np.ones((4, 2, 3)), y=np.array([5, 7, 5, 7]))
    raw = arrays_file.npz(str(path))
    assert raw.classes == ["5", "7"] and raw.y.tolist() == [0, 1, 0, 1]
    assert arrays_file.npz(str(path), task="regression").y.shape == (4, 1)


def test_bad_npz_is_named(tmp_path: Path):
    path = tmp_path / "points.npz"
    np.savez(path, x=np.ones((4, 2)), labels=np.zeros(4))
    with pytest.raises(DataError, match=r"points.npz has no array 'y' \(it has x, labels\)"):
        arrays_file.npz(str(path))
    x = np.ones((4, 2))
    x[2, 1] = np.nan
    np.savez(path, x=x, y=np.zeros(4))
    with pytest.raises(DataError, match=r"x of sample 2 holds NaN or inf"):
        arrays_file.npz(str(path))
    np.savez(path, x=np.ones((3, 2)), y=np.array([0.0, np.nan, 1.0]))
    with pytest.raises(DataError, match=r"points.npz: y of sample 1 holds NaN or inf"):
        arrays_file.npz(str(path))
    np.savez(path, x=np.array([[1.0, 2.0], [3.0, 1e39]]), y=np.zeros(2))
    with pytest.raises(DataError, match=r"points.npz: x of sample 1 holds 1e\+39, beyond float32"):
        arrays_file.npz(str(path))
    np.savez(path, x=np.ones((2, 2)), y=np.array([1.0, 1e300]))
    with pytest.raises(DataError, match=r"points.npz: y of sample 1 holds 1e\+300, beyond float32"):
        arrays_file.npz(str(path), task="regression")
    np.savez(path, x=np.ones((0, 2)), y=np.zeros(0))
    with pytest.raises(DataError, match=r"points.npz holds no samples"):
        arrays_file.npz(str(path))
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(DataError, match=r"points.npz cannot be read as .npz"):
        arrays_file.npz(str(path))


def test_series_csv_is_windowed_and_bad_values_named(tmp_path: Path):
    path = write_csv(tmp_path / "load.csv", {"load": np.arange(40.0)})
    raw = series.series_csv(str(path), column="load", window=8, horizon=2)
    assert raw.x.shape == (31, 8, 1) and raw.y[0].tolist() == [8, 9]
    bad = write_csv(tmp_path / "bad.csv", {"load": [1.0, 2.0, "oops", *range(40)]})
    with pytest.raises(DataError, match=r"bad.csv, column 'load', row 3: 'oops' is not a finite"):
        series.series_csv(str(bad), column="load")
    huge = write_csv(tmp_path / "huge.csv", {"load": [*range(40), 1e308]})
    with pytest.raises(DataError, match=r"huge.csv, column 'load', row 41: 1e\+308 is beyond"):
        series.series_csv(str(huge), column="load")


def test_settings_are_checked_against_the_source():
    assert source_settings({"name": "linear", "batch_size": 4, "noise": 0.2}) == {"noise": 0.2}
    with pytest.raises(ConfigError, match=r"data.window is not a setting of data 'linear'"):
        source_settings({"name": "linear", "window": 3})
    with pytest.raises(ConfigError, match=r"data.path is required for data 'npz'"):
        load_source({"name": "npz", "path": "???"})
