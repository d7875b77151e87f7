"""Data sources: the built-in sets, the user's files (small files the tests write) and a
user's own source, each named by `_target_`."""

import json
import logging
import re
import subprocess
import sys
import typing
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from dlpipe.config.schema import targets
from dlpipe.config.schema.data import COMMON, source_settings
from dlpipe.config.schema.validate import validate
from dlpipe.data import arrays_file, images, series, synthetic, tables
from dlpipe.data.digits import digits
from dlpipe.data.prepare import prepare
from dlpipe.data.raw import HEAD_TASKS
from dlpipe.data.sources import code_digest, load_source
from dlpipe.errors import ConfigError, DataError
from dlpipe.tracking.champion import registered_name
from tests.conftest import CONF_DIR, ROOT


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


def test_image_channels_and_size_are_the_files_own(tmp_path: Path, caplog):
    write_images(tmp_path / "grey")
    grey = images.image_folder(str(tmp_path / "grey"))
    assert grey.x.shape == (6, 1, 12, 10)  # grey 10 wide, 12 high: as they are
    assert "resized" not in caplog.text
    colour = tmp_path / "colour"
    write_images(colour)
    Image.new("RGB", (10, 12), color=(200, 30, 30)).save(colour / "light" / "red.png")
    Image.new("RGB", (7, 5), color=(30, 30, 200)).save(colour / "dark" / "blue.png")
    with caplog.at_level(logging.INFO, logger="dlpipe.data.images"):
        raw = images.image_folder(str(colour))
    assert raw.x.shape == (8, 3, 12, 10)  # colour stays colour, the common size kept
    red = raw.x[raw.y == 1][-1]
    assert red[0].min() > 0.7 and red[1].max() < 0.2  # its red channel red, green dark
    said = [r.message for r in caplog.records if "resized" in r.message]
    assert said == [
        "images: resized 1 of 8 images to 12x10 (height x width; data.size sets another)"
    ]


def test_configured_image_channels_and_size_win(tmp_path: Path):
    write_images(tmp_path / "shades")
    Image.new("P", (10, 12)).save(tmp_path / "shades" / "dark" / "palette.png")
    assert images.image_folder(str(tmp_path / "shades")).x.shape[1] == 1  # no colour in it
    raw = images.image_folder(str(tmp_path / "shades"), size=[4, 4], channels=3)
    assert raw.x.shape == (7, 3, 4, 4)


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


LINEAR = {"_target_": "dlpipe.data.synthetic.linear", "name": "linear"}


def test_settings_are_checked_against_the_source():
    assert source_settings({**LINEAR, "batch_size": 4, "noise": 0.2}) == {"noise": 0.2}
    with pytest.raises(ConfigError, match=r"data.window is not a setting of data 'linear'"):
        source_settings({**LINEAR, "window": 3})
    npz = {"_target_": "dlpipe.data.arrays_file.npz", "name": "npz", "path": "???"}
    with pytest.raises(ConfigError, match=r"data.path is required for data 'npz'"):
        load_source(npz)


# Every data set is named by `_target_`, dlpipe's as a user's.


def data_configs() -> dict[str, dict]:
    return {p.stem: yaml.safe_load(p.read_text()) for p in (CONF_DIR / "data").glob("*.yaml")}


@pytest.mark.parametrize("name", sorted(data_configs()))
def test_every_data_config_names_its_source_read_from_its_signature(name):
    config = data_configs()[name]
    assert config["name"] == name and config["_target_"].startswith("dlpipe.data.")
    # Read from the module's source, not imported: checking a config loads no data library.
    found = targets._read_source(config["_target_"])
    assert found is not None and not found.open
    own = {key for key in config if key not in COMMON}
    assert own <= set(found.settings)


def test_checking_every_data_config_loads_no_data_library():
    overrides = {
        "table": "data.target=t",
        "series": "data.column=c",
        "series_long": "data.values=v",
    }
    files = (
        "table",
        "series",
        "npz",
        "images",
        "series_rows",
        "series_long",
        "series_folder",
        "text_files",
        "text_table",
        "conll",
    )
    script = (
        "import sys\n"
        "from hydra import compose, initialize_config_dir\n"
        "from dlpipe.config.schema.validate import validate\n"
        f"with initialize_config_dir({str(CONF_DIR)!r}):\n"
        f"    for name in {sorted(data_configs())!r}:\n"
        f"        extra = {overrides!r}.get(name)\n"
        "        validate(compose('config', [f'data={name}', 'data.path=x', extra][: 3 if extra"
        f" else 2] if name in {files!r} else [f'data={{name}}']))\n"
        "print(sorted({'torch', 'sklearn', 'pandas', 'PIL', 'statsmodels', 'dlpipe.data'}"
        " & set(sys.modules)))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_source_choices_are_the_tasks_and_modes_the_code_takes():
    table = targets.signature("dlpipe.data.tables.table").settings
    assert set(typing.get_args(table["task"].hint)[0].__args__) == set(HEAD_TASKS)
    npz = targets.signature("dlpipe.data.arrays_file.npz").settings
    assert set(typing.get_args(npz["task"].hint)) == set(HEAD_TASKS)
    channels = targets.signature("dlpipe.data.images.image_folder").settings["channels"]
    assert set(typing.get_args(channels.hint)[0].__args__) == set(images.MODES)


# A user's own source: the README's example, prepared as a built-in is.

SECTION = "### Your own data source"
# A code block of the README that is a file of the example: its first line names it.
_FILE_BLOCK = re.compile(
    r"```(?:python|yaml)\n# (?P<path>[\w/.]+\.(?:py|yaml))\b[^\n]*\n(?P<body>.*?)```", re.S
)


def readme_example() -> tuple[dict[str, str], list[str]]:
    """The section's files by path, and its shell commands."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index(SECTION) :].split("\n## ", 1)[0]
    files = {match["path"]: match["body"] for match in _FILE_BLOCK.finditer(section)}
    shell = section.split("```bash\n", 1)[1].split("```", 1)[0]
    return files, [line for line in shell.splitlines() if line.strip()]


@pytest.fixture
def own_source(tmp_path: Path, monkeypatch) -> Path:
    """A project folder holding the README's package and config folder, as the cwd."""
    files, _ = readme_example()
    for path, body in files.items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(body)
    (tmp_path / "mypkg" / "__init__.py").write_text("")
    monkeypatch.chdir(tmp_path)
    yield tmp_path
    for module in [name for name in sys.modules if name.split(".")[0] == "mypkg"]:
        del sys.modules[module]


def own_config(make_cfg, *overrides: str):
    return make_cfg("hydra.searchpath=[file://myconf]", "data=my_data", *overrides)


def test_the_readme_shows_the_package_the_config_and_the_commands():
    files, commands = readme_example()
    assert set(files) == {"mypkg/data.py", "myconf/data/my_data.yaml"}
    assert commands[0].startswith("python pipelines/prepare.py data=my_data")


def test_own_source_is_prepared_as_a_built_in_is(own_source: Path, make_cfg):
    cfg = own_config(make_cfg, "data.samples=90")
    typed = validate(cfg)
    assert typed.data.source == "mypkg.data.blobs" and typed.data.settings["samples"] == 90
    meta = prepare(cfg.data, own_source / "prepared")
    assert sorted(p.name for p in (own_source / "prepared").iterdir()) == [
        "meta.json",
        "test.npz",
        "train.npz",
        "val.npz",
    ]
    assert meta["name"] == "blobs" and meta["task"] == "classification"
    assert meta["classes"] == ["0", "1", "2"] and meta["input_shape"] == [2]
    assert sum(meta["sizes"].values()) == 90 and meta["stats"]["x_mean"]
    assert meta["data"]["_target_"] == meta["source"]["_target_"] == "mypkg.data.blobs"
    assert registered_name("auto", meta["data"]) == "blobs"
    # The prepared record follows the loader's code: an edit shows in it.
    before = meta["source"]["code"]
    loader = own_source / "mypkg" / "data.py"
    loader.write_text(loader.read_text() + "\n# edited\n")
    assert code_digest("mypkg.data.blobs") != before


def test_own_source_of_float_targets_is_a_regression(own_source: Path, make_cfg):
    (own_source / "mypkg" / "line.py").write_text(
        "import numpy as np\n\n\ndef line(samples: int = 40):\n"
        "    x = np.linspace(-1, 1, samples)\n    return x, 2 * x + 1\n"
    )
    raw = load_source({"_target_": "mypkg.line.line", "name": "line"})
    assert raw.task == "regression" and raw.x.shape == (40, 1) and raw.y.shape == (40, 1)


@pytest.mark.parametrize(
    "overrides,message",
    [
        (
            ("+data.depth=3",),
            "data.depth is not a setting of data 'blobs': it takes name, split, batch_size, "
            "normalise, train_per_class, samples, spread, seed",
        ),
        (("data.spread=-1",), "data.spread must be a number > 0, got -1"),
        (("data.samples=many",), "data.samples must be an integer > 0, got 'many'"),
        (
            ("data.split.test=0.9",),
            "data.split.val + data.split.test must be below 1 to leave training data",
        ),
    ],
)
def test_own_source_bad_settings_are_one_line(own_source: Path, make_cfg, overrides, message):
    with pytest.raises(ConfigError) as caught:
        validate(own_config(make_cfg, *overrides))
    assert str(caught.value) == message


@pytest.mark.parametrize(
    "returned,message",
    [
        ("[1, 2]", r"^data source mypkg.bad.load returned list: return arrays \(x, y\)"),
        ("np.ones((3, 2)), np.ones(4)", r"^data source mypkg.bad.load: x has 3 samples and y 4"),
        ("np.ones((2, 2)), np.array([1.0, np.nan])", r"y of sample 1 holds NaN or inf"),
    ],
)
def test_own_source_returning_what_is_not_data_is_named(own_source: Path, returned, message):
    (own_source / "mypkg" / "bad.py").write_text(
        f"import numpy as np\n\n\ndef load():\n    return {returned}\n"
    )
    with pytest.raises(DataError, match=message):
        load_source({"_target_": "mypkg.bad.load", "name": "bad"})


def test_readme_commands_prepare_the_own_source(own_source: Path):
    """The README's prepare command, in a project folder with the config folder on the
    search path, as the user runs it."""
    _, commands = readme_example()
    _, script, *overrides = commands[0].split()
    done = subprocess.run(
        [sys.executable, str(ROOT / script), *overrides, "hydra.searchpath=[file://myconf]"],
        cwd=own_source,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    meta = json.loads((own_source / "data" / "prepared" / "meta.json").read_text())
    assert meta["source"]["_target_"] == "mypkg.data.blobs" and meta["data"]["spread"] == 0.8
