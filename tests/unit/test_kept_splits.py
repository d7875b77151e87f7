"""Kept splits: a split column, or files of test and validation samples, split the data
as the user gave it; only what they leave out is carved from the training rows."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dlpipe.config import checks
from dlpipe.config.schema.validate import validate
from dlpipe.data.arrays import load_prepared
from dlpipe.data.prepare import prepare
from dlpipe.data.tables import split_assignment
from dlpipe.errors import ConfigError, DataError


def write_table(path: Path, rows: int, classes: str = "abc", seed: int = 0, **extra) -> Path:
    """A table of two numeric features and a label, the label its row's class in turn."""
    rng = np.random.default_rng(seed)
    labels = [classes[i % len(classes)] for i in range(rows)]
    frame = pd.DataFrame(
        {"f1": np.arange(rows, dtype=float), "f2": rng.normal(size=rows), "label": labels, **extra}
    )
    frame.to_csv(path, index=False)
    return path


def prepared(make_cfg, out: Path, *overrides: str) -> tuple[dict, dict]:
    cfg = make_cfg("data=table", "data.target=label", *overrides)
    validate(cfg)
    meta = prepare(cfg.data, out)
    return meta, load_prepared(out).splits


def test_split_column_assigns_the_rows_and_is_no_feature(make_cfg, tmp_path: Path):
    marks = ["train"] * 40 + ["Val"] * 6 + [" test"] * 9
    path = write_table(tmp_path / "marked.csv", 55, split=marks)
    meta, splits = prepared(
        make_cfg, tmp_path / "out", f"data.path={path}", "data.split.column=split"
    )
    assert meta["sizes"] == {"train": 40, "val": 6, "test": 9}
    assert meta["input_shape"] == [2]  # f1 and f2: the split column is no feature
    assert meta["split"]["mode"] == "column" and meta["split"]["test"] == "column split"
    # Test rows are rows 46..54, in order (f1 is the row number, standardised).
    mean, std = (np.ravel(meta["stats"][key])[0] for key in ("x_mean", "x_std"))
    rows = splits["test"][0][:, 0].numpy() * std + mean
    assert np.allclose(rows, np.arange(46, 55), atol=1e-3)


def test_split_column_without_val_rows_carves_val_from_training(make_cfg, tmp_path: Path):
    path = write_table(tmp_path / "marked.csv", 60, split=["train"] * 40 + ["test"] * 20)
    meta, splits = prepared(
        make_cfg,
        tmp_path / "out",
        f"data.path={path}",
        "data.split.column=split",
        "data.split.val=0.3",
    )
    assert meta["sizes"] == {"train": 28, "val": 12, "test": 20}
    # Stratified: each of the three classes holds a third of the validation rows.
    assert np.bincount(splits["val"][1].numpy()).tolist() == [4, 4, 4]
    assert meta["split"]["val"] == "0.3 of the training rows"


@pytest.mark.parametrize(
    ("marks", "message"),
    [
        (["train", "dev", "test"], r"marked.csv, column 'split', row 2: the split is 'dev'"),
        (["train", None, "test"], r"row 2: the split is an empty or missing value"),
    ],
)
def test_split_column_with_other_values_names_file_column_and_row(tmp_path, marks, message):
    frame = pd.DataFrame({"split": marks})
    with pytest.raises(DataError, match=message + r".*one of train, val, test"):
        split_assignment(frame, "split", tmp_path / "marked.csv")


def test_split_column_missing_or_without_test_rows_is_named(make_cfg, tmp_path: Path):
    path = write_table(tmp_path / "marked.csv", 30, split=["train"] * 30)
    with pytest.raises(DataError, match=r"has no column 'part'.*set data.split.column"):
        prepared(make_cfg, tmp_path / "out", f"data.path={path}", "data.split.column=part")
    with pytest.raises(DataError, match=r"column 'split' marks no row test: mark the test rows"):
        prepared(make_cfg, tmp_path / "out", f"data.path={path}", "data.split.column=split")
    assert not (tmp_path / "out").exists()


def test_a_source_reading_no_columns_refuses_a_split_column(make_cfg):
    with pytest.raises(ConfigError, match=r"data 'digits' reads no columns"):
        validate(make_cfg("+data.split.column=split"))
    with pytest.raises(ConfigError, match=r"data.test_path is set, but data 'digits' reads no"):
        validate(make_cfg("+data.test_path=test.csv"))


def test_test_file_is_kept_whole_with_the_training_file_s_class_names(make_cfg, tmp_path):
    train = write_table(tmp_path / "train.csv", 50)
    # Only b and c: the test file's own class indices (b=0, c=1) differ from training's.
    test = write_table(tmp_path / "test.csv", 7, classes="cb", seed=1)
    meta, splits = prepared(
        make_cfg,
        tmp_path / "out",
        f"data.path={train}",
        f"data.test_path={test}",
        "data.split.test=0",
        "data.split.val=0.2",
    )
    assert meta["sizes"] == {"train": 40, "val": 10, "test": 7}
    assert meta["classes"] == ["a", "b", "c"]
    assert splits["test"][1].tolist() == [2, 1, 2, 1, 2, 1, 2]
    assert meta["split"] == {
        "mode": "files",
        "test": str(test),
        "val": "0.2 of the training rows",
        "seed": 0,
    }
    # Nothing random touches the test file: its rows are in the file's order.
    mean, std = (np.ravel(meta["stats"][key])[0] for key in ("x_mean", "x_std"))
    assert np.allclose(splits["test"][0][:, 0].numpy() * std + mean, np.arange(7), atol=1e-3)
    # Registered as the training file is named; a changed test file is a changed config.
    from dlpipe.tracking.champion import registered_name

    assert registered_name("auto", meta["data"]) == "train"
    other = make_cfg(
        "data=table",
        "data.target=label",
        f"data.path={train}",
        "data.split.test=0",
        "data.split.val=0.2",
        f"data.test_path={tmp_path / 'other.csv'}",
    )
    with pytest.raises(ConfigError, match=r"data.test_path is .*other.csv but data/prepared"):
        checks.check_prepared_matches(other, meta)


def test_val_file_and_test_file_split_nothing(make_cfg, tmp_path: Path):
    files = {
        name: write_table(tmp_path / f"{name}.csv", rows)
        for name, rows in (("train", 30), ("val", 6), ("test", 9))
    }
    meta, _ = prepared(
        make_cfg,
        tmp_path / "out",
        f"data.path={files['train']}",
        f"data.test_path={files['test']}",
        f"data.val_path={files['val']}",
        "data.split.test=0",
        "data.split.val=0",
    )
    assert meta["sizes"] == {"train": 30, "val": 6, "test": 9}
    written = json.loads((tmp_path / "out" / "meta.json").read_text())
    assert written["split"]["mode"] == "files" and written["split"]["val"] == str(files["val"])


@pytest.mark.parametrize(
    ("test_rows", "message"),
    [
        (
            {"f1": [1.0], "f2": [2.0], "f3": [3.0], "label": ["a"]},
            r"test.csv holds column 'f3', which the training file does not: give it the "
            r"training file's columns",
        ),
        (
            {"f1": [1.0], "label": ["a"]},
            r"test.csv lacks column 'f2' of the training file",
        ),
        (
            {"f1": [1.0], "f2": [2.0], "label": ["z"]},
            r"test.csv holds class 'z', which the training file does not \(a, b, c\)",
        ),
    ],
)
def test_a_test_file_unlike_the_training_file_is_named(make_cfg, tmp_path, test_rows, message):
    train = write_table(tmp_path / "train.csv", 30)
    test = tmp_path / "test.csv"
    pd.DataFrame(test_rows).to_csv(test, index=False)
    with pytest.raises(DataError, match=message):
        prepared(
            make_cfg,
            tmp_path / "out",
            f"data.path={train}",
            f"data.test_path={test}",
            "data.split.test=0",
        )
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("name", ["val", "test"])
def test_a_zero_fraction_needs_a_file_or_a_column(make_cfg, name):
    cfg = make_cfg("data=table", "data.target=label", "data.path=x.csv", f"data.split.{name}=0")
    with pytest.raises(
        ConfigError,
        match=rf"data.split.{name}=0 leaves no {name} samples: "
        rf".*data.{name}_path",
    ):
        validate(cfg)


def test_regression_files_carve_val_at_random(make_cfg, tmp_path: Path):
    train = write_table(tmp_path / "train.csv", 40, y=np.arange(40.0))
    test = write_table(tmp_path / "test.csv", 5, y=np.arange(5.0))
    cfg = make_cfg(
        "data=table",
        "data.target=y",
        "data.task=regression",
        "data.categorical=[label]",
        f"data.path={train}",
        f"data.test_path={test}",
        "data.split.test=0",
        "data.split.val=0.25",
        "data.normalise=false",
    )
    validate(cfg)
    meta = prepare(cfg.data, tmp_path / "out")
    splits = load_prepared(tmp_path / "out").splits
    assert meta["sizes"] == {"train": 30, "val": 10, "test": 5}
    val = splits["val"][1].numpy().ravel()
    assert sorted(val.tolist()) != list(range(30, 40))  # drawn, not the last rows
    assert splits["test"][1].numpy().ravel().tolist() == [0, 1, 2, 3, 4]


def test_forecasting_files_carve_val_by_time(make_cfg, tmp_path: Path):
    train, test = tmp_path / "train.csv", tmp_path / "test.csv"
    pd.DataFrame({"load": np.arange(100.0)}).to_csv(train, index=False)
    pd.DataFrame({"load": np.arange(100.0, 130.0)}).to_csv(test, index=False)
    cfg = make_cfg(
        "data=series",
        "data.column=load",
        "data.window=8",
        f"data.path={train}",
        f"data.test_path={test}",
        "data.split.test=0",
        "data.split.val=0.2",
        "data.normalise=false",
    )
    validate(cfg)
    meta = prepare(cfg.data, tmp_path / "out")
    splits = load_prepared(tmp_path / "out").splits
    first = {name: float(x[0, 0, 0]) for name, (x, _) in splits.items()}
    assert meta["sizes"] == {"train": 74, "val": 18, "test": 22}
    # Validation is the training series' last part, the test file's windows come after it.
    assert first == {"train": 0.0, "val": 74.0, "test": 100.0}


def test_bad_split_is_one_line_and_writes_nothing(tmp_path: Path):
    """What a user sees from the stage: one `error:` line, exit 2."""
    path = write_table(tmp_path / "marked.csv", 20, split=["train"] * 10 + ["later"] * 10)
    done = subprocess.run(
        [
            sys.executable,
            "pipelines/prepare.py",
            "data=table",
            f"data.path={path}",
            "data.target=label",
            "data.split.column=split",
            f"hydra.run.dir={tmp_path}",
        ],
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
    )
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2 and len(lines) == 1, done.stderr
    assert lines[0].startswith("error: data file") and "row 11: the split is 'later'" in lines[0]


def test_a_test_file_s_categories_are_matched_onto_the_training_file_s(make_cfg, tmp_path):
    """Same width, other categories: matched by name, never by position."""
    colours = {"train": ["red", "blue"] * 10, "test": ["green", "red"], "ok": ["red", "red"]}
    files = {}
    for name, values in colours.items():
        files[name] = write_table(tmp_path / f"{name}.csv", len(values), colour=values)
    base = ("data.normalise=false", f"data.path={files['train']}", "data.split.test=0")
    with pytest.raises(DataError, match=r"test.csv holds category 'green' in column 'colour'"):
        prepared(make_cfg, tmp_path / "out", *base, f"data.test_path={files['test']}")
    _, splits = prepared(make_cfg, tmp_path / "out", *base, f"data.test_path={files['ok']}")
    # Features: f1, f2, colour=blue, colour=red; the test file's only colour is red.
    assert splits["test"][0][:, 2:].tolist() == [[0.0, 1.0], [0.0, 1.0]]


def test_a_split_column_is_no_input_of_the_served_model(make_cfg, tmp_path: Path):
    from dlpipe.serving.settings import table_columns

    path = write_table(tmp_path / "marked.csv", 30, split=["train"] * 24 + ["test"] * 6)
    meta, _ = prepared(make_cfg, tmp_path / "out", f"data.path={path}", "data.split.column=split")
    assert [column["name"] for column in table_columns(meta)] == ["f1", "f2"]


def test_npz_test_file_of_other_shape_is_named(make_cfg, tmp_path: Path):
    rng = np.random.default_rng(0)
    train, test = tmp_path / "train.npz", tmp_path / "test.npz"
    np.savez(train, x=rng.normal(size=(30, 4)), y=np.arange(30) % 2)
    np.savez(test, x=rng.normal(size=(5, 3)), y=np.arange(5) % 2)
    cfg = make_cfg("data=npz", f"data.path={train}", f"data.test_path={test}", "data.split.test=0")
    validate(cfg)
    with pytest.raises(
        DataError,
        match=r"test.npz gives samples shaped \(3,\), but the training "
        r"file .*train.npz gives \(4,\): give it the training file's columns",
    ):
        prepare(cfg.data, tmp_path / "out")


def test_padded_series_of_files_of_other_lengths_are_padded_alike(make_cfg, tmp_path: Path):
    """A test file of longer series: every split padded to the longest, at the end."""
    train, test = tmp_path / "train.csv", tmp_path / "test.csv"
    rows = [[i % 2, *np.arange(6.0)] for i in range(20)] + [[0, 1.0, 2.0, 3.0, None, None, None]]
    pd.DataFrame(rows, columns=["label", *map(str, range(6))]).to_csv(train, index=False)
    longer = [[i % 2, *np.arange(9.0)] for i in range(4)]
    pd.DataFrame(longer, columns=["label", *map(str, range(9))]).to_csv(test, index=False)
    cfg = make_cfg(
        "data=series_rows",
        f"data.path={train}",
        f"data.test_path={test}",
        "data.target=label",
        "data.ragged=pad",
        "data.split.test=0",
        "data.normalise=false",
    )
    validate(cfg)
    meta = prepare(cfg.data, tmp_path / "out")
    splits = load_prepared(tmp_path / "out").splits
    assert meta["input_shape"] == [9, 1] and meta["sizes"]["test"] == 4
    x_train = np.concatenate([splits[name][0].numpy() for name in ("train", "val")])
    assert np.isnan(x_train[:, 6:]).all() and np.isfinite(splits["test"][0].numpy()).all()
