"""Tables larger than memory: a CSV or Parquet file prepared in shards, a block at a time.

Small files read in tiny blocks (many of them) into tiny shards stand in for large ones:
what is tested is that the shards hold what the in-memory path makes of the same file
(splits, encoding, statistics), that a file sorted by label still gives mixed training
shards, and that bad input is named by its row in the whole file.
"""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from dlpipe.config.schema.validate import validate
from dlpipe.data import table_shards
from dlpipe.data.arrays import load_prepared
from dlpipe.data.prepare import prepare
from dlpipe.errors import ConfigError, DataError

SHARDED = ("data.shards.above_mb=0", "data.shards.size_mb=0.005", "data.stream.workers=2")


@pytest.fixture(autouse=True)
def small_blocks(monkeypatch):
    """Blocks of a few hundred rows: the files below are read in many."""
    monkeypatch.setattr(table_shards, "BLOCK_BYTES", 20_000)


def write_table(folder: Path, rows: int = 1500) -> pd.DataFrame:
    """A table sorted by its label: numbers, whole numbers, a text category, a target."""
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "x1": rng.normal(size=rows),
            "x2": rng.normal(size=rows) * 3 + 5,
            "colour": rng.choice(["red", "green", "blue"], size=rows),
            "count": rng.integers(0, 10, size=rows),
        }
    )
    frame["label"] = np.where(frame.x1 + (frame.colour == "red") > 0.5, "yes", "no")
    frame["value"] = frame.x1 * 2 + frame.x2
    frame = frame.sort_values("label", kind="stable").reset_index(drop=True)
    folder.mkdir(parents=True, exist_ok=True)
    frame.to_csv(folder / "table.csv", index=False)
    frame.to_parquet(folder / "table.parquet")
    return frame


def prepared(make_cfg, out: Path, *overrides: str) -> dict:
    cfg = make_cfg("data=table", *overrides)
    validate(cfg)
    return prepare(cfg.data, out)


def same_rows(a: tuple, b: tuple) -> bool:
    """The same samples and targets, up to their order."""
    key = lambda x: torch.sort(x.flatten(1).sum(1)).values  # noqa: E731
    return torch.allclose(key(a[0]), key(b[0]), atol=1e-4) and torch.allclose(
        torch.sort(a[1].flatten().float()).values, torch.sort(b[1].flatten().float()).values
    )


def test_a_csv_in_shards_holds_what_the_in_memory_path_holds(make_cfg, tmp_path: Path):
    write_table(tmp_path)
    data = [f"data.path={tmp_path / 'table.csv'}", "data.target=label"]
    in_memory = prepared(make_cfg, tmp_path / "arrays", *data)
    sharded = prepared(make_cfg, tmp_path / "shards", *data, *SHARDED)
    assert sharded["format"] == "shards" and "format" not in in_memory
    assert sharded["sizes"] == in_memory["sizes"]
    assert sharded["input_shape"] == in_memory["input_shape"] == [7]  # colour: 3 columns
    assert sharded["classes"] == in_memory["classes"] == ["no", "yes"]
    for key in ("x_mean", "x_std"):
        assert np.allclose(sharded["stats"][key], in_memory["stats"][key], atol=1e-5)
    assert sharded["columns"][2] == {"name": "colour", "categories": ["blue", "green", "red"]}
    arrays, shards = load_prepared(tmp_path / "arrays"), load_prepared(tmp_path / "shards")
    for name in ("train", "val", "test"):
        assert same_rows(arrays.splits[name], shards.splits[name]), name
    # The file is sorted by label; every training shard holds both classes all the same.
    records = sharded["shards"]["train"]
    assert len(records) > 5
    folder = tmp_path / "shards"
    for record in records:
        labels = pd.read_parquet(folder / record["file"], columns=["y"])["y"]
        assert labels.nunique() == 2, record["file"]


def test_a_parquet_regression_target_is_standardised_as_in_memory(make_cfg, tmp_path):
    write_table(tmp_path)
    data = [
        f"data.path={tmp_path / 'table.parquet'}",
        "data.target=value",
        "data.task=regression",
        "data.categorical=[count]",
    ]
    in_memory = prepared(make_cfg, tmp_path / "arrays", *data)
    sharded = prepared(make_cfg, tmp_path / "shards", *data, *SHARDED)
    assert sharded["task"] == "regression" and sharded["input_shape"] == in_memory["input_shape"]
    for key in ("x_mean", "x_std", "y_mean", "y_std"):
        assert np.allclose(sharded["stats"][key], in_memory["stats"][key], atol=1e-5), key
    arrays, shards = load_prepared(tmp_path / "arrays"), load_prepared(tmp_path / "shards")
    assert same_rows(arrays.splits["test"], shards.splits["test"])


def test_a_split_column_is_kept(make_cfg, tmp_path: Path):
    frame = write_table(tmp_path)
    frame["part"] = np.where(np.arange(len(frame)) % 5 == 0, "test", "train")
    frame.to_csv(tmp_path / "table.csv", index=False)
    data = [f"data.path={tmp_path / 'table.csv'}", "data.target=label", "data.split.column=part"]
    in_memory = prepared(make_cfg, tmp_path / "arrays", *data)
    sharded = prepared(make_cfg, tmp_path / "shards", *data, *SHARDED)
    assert sharded["sizes"] == in_memory["sizes"] and sharded["sizes"]["test"] == 300
    assert sharded["split"]["mode"] == in_memory["split"]["mode"] == "column"
    arrays, shards = load_prepared(tmp_path / "arrays"), load_prepared(tmp_path / "shards")
    assert same_rows(arrays.splits["test"], shards.splits["test"])


def test_a_bad_value_late_in_the_file_is_named_by_its_row(make_cfg, tmp_path: Path):
    frame = write_table(tmp_path)
    good = prepared(make_cfg, tmp_path, f"data.path={tmp_path / 'table.csv'}", "data.target=label")
    frame["x2"] = frame["x2"].astype(object)
    frame.loc[1234, "x2"] = "n/a"
    frame.to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(DataError) as raised:
        prepared(
            make_cfg, tmp_path, f"data.path={tmp_path / 'bad.csv'}", "data.target=label", *SHARDED
        )
    message = str(raised.value)
    assert "\n" not in message and str(tmp_path / "bad.csv") in message
    assert "column 'x2'" in message and "1235" in message  # data row 1235, after many blocks
    # What was prepared before is as it was.
    assert json.loads((tmp_path / "meta.json").read_text())["hash"] == good["hash"]
    assert not (tmp_path / "shards").exists()


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        (("data.target=[label,value]", "data.task=[classification,regression]"), "data.target"),
        (("data.target=label", "data.test_path=other.csv"), "data.test_path"),
    ],
)
def test_what_tables_in_shards_cannot_do_is_one_line(make_cfg, tmp_path, overrides, named):
    write_table(tmp_path)
    with pytest.raises(ConfigError) as raised:
        prepared(make_cfg, tmp_path, f"data.path={tmp_path / 'table.csv'}", *overrides, *SHARDED)
    message = str(raised.value)
    assert "\n" not in message and named in message and "data.shards.above_mb" in message
