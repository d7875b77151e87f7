"""A folder of series files, a subfolder per class: prepared in memory or in shards alike."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from dlpipe.config.schema.validate import validate
from dlpipe.data.arrays import load_prepared
from dlpipe.data.prepare import prepare
from dlpipe.errors import ConfigError, DataError

SHARDED = ("data.shards.above_mb=0", "data.shards.size_mb=0.002", "data.stream.workers=2")
STEPS = 30


def write_series(folder: Path, per_class: int = 20) -> Path:
    """Two channels of 30 steps: a sine, a square wave and noise, a class each; CSV files
    and, for the noise, .npy files."""
    rng = np.random.default_rng(0)
    steps = np.linspace(0, 4 * np.pi, STEPS)
    shapes = {"sine": np.sin, "square": lambda t: np.sign(np.sin(t)), "noise": np.zeros_like}
    for name, shape in shapes.items():
        (folder / name).mkdir(parents=True)
        for index in range(per_class):
            values = np.stack([shape(steps + index), steps / 10], axis=1)
            values = values + rng.normal(scale=0.3, size=values.shape)
            if name == "noise":
                np.save(folder / name / f"{index:03d}.npy", values)
            else:
                frame = pd.DataFrame(values, columns=["signal", "trend"])
                frame.to_csv(folder / name / f"{index:03d}.csv", index=False)
    return folder


def prepared(make_cfg, folder: Path, out: Path, *overrides: str) -> dict:
    cfg = make_cfg("data=series_folder", f"data.path={folder}", *overrides)
    validate(cfg)
    return prepare(cfg.data, out)


def test_series_files_in_shards_hold_what_memory_holds(make_cfg, tmp_path: Path):
    folder = write_series(tmp_path / "series")
    in_memory = prepared(make_cfg, folder, tmp_path / "arrays")
    sharded = prepared(make_cfg, folder, tmp_path / "shards", *SHARDED)
    assert sharded["format"] == "shards" and "format" not in in_memory
    assert sharded["input_shape"] == in_memory["input_shape"] == [STEPS, 2]
    assert sharded["classes"] == in_memory["classes"] == ["noise", "sine", "square"]
    assert sharded["sizes"] == in_memory["sizes"] == {"train": 42, "val": 9, "test": 9}
    assert len(sharded["shards"]["train"]) > 3
    for key in ("x_mean", "x_std"):  # per channel, from one streaming pass
        assert np.allclose(sharded["stats"][key], in_memory["stats"][key], atol=1e-5)
    arrays = load_prepared(tmp_path / "arrays").splits["test"]
    streamed = load_prepared(tmp_path / "shards").splits["test"]
    assert sorted(arrays[1].tolist()) == sorted(streamed[1].tolist())
    key = lambda x: torch.sort(x.flatten(1).sum(1)).values  # noqa: E731
    assert torch.allclose(key(arrays[0]), key(streamed[0]), atol=1e-4)


def test_a_series_of_another_length_is_named_with_its_shard(make_cfg, tmp_path: Path):
    folder = write_series(tmp_path / "series")
    short = folder / "sine" / "007.csv"
    pd.read_csv(short).head(12).to_csv(short, index=False)
    with pytest.raises(DataError) as raised:
        prepared(make_cfg, folder, tmp_path / "out", *SHARDED)
    message = str(raised.value)
    assert "\n" not in message and f"series {short} has 12 steps of 2 channels" in message
    assert "(shard " in message and not (tmp_path / "out" / "shards").exists()


def test_a_value_that_is_no_number_is_named(make_cfg, tmp_path: Path):
    folder = write_series(tmp_path / "series")
    bad = folder / "square" / "003.csv"
    frame = pd.read_csv(bad).astype(object)
    frame.loc[4, "signal"] = "oops"
    frame.to_csv(bad, index=False)
    with pytest.raises(DataError, match=f"series {bad} cannot be read"):
        prepared(make_cfg, folder, tmp_path / "out")


def test_series_scaling_alone_is_refused_in_shards(make_cfg, tmp_path: Path):
    folder = write_series(tmp_path / "series", per_class=4)
    with pytest.raises(ConfigError, match=r"data\.normalise=series .* data\.shards\.above_mb"):
        prepared(make_cfg, folder, tmp_path / "out", "data.normalise=series", *SHARDED)
