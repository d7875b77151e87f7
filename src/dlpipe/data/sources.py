"""Data sources by name: built-in sets (shipped inside installed packages or generated from a
seed: nothing is downloaded) and the user's own files.

A source is a function of its own settings, the keys of its conf/data/<name>.yaml beyond
the ones every data config has (COMMON), returning RawData.
"""

import dataclasses
import inspect
from collections.abc import Callable

import numpy as np

from dlpipe.data import arrays_file, images, located, series, synthetic, tables
from dlpipe.data.raw import RawData, class_indices
from dlpipe.errors import ConfigError
from dlpipe.schema.data import Data

# Settings of every data config: read by the prepare stage and the loaders, not the source.
COMMON = tuple(field.name for field in dataclasses.fields(Data))


def digits(keep: list | None = None, canvas: int | None = None, seed: int = 0) -> RawData:
    """scikit-learn's bundled 8x8 handwritten digits: 1797 images, 10 classes; only the
    digits in `keep`, when given; each placed at a random spot (drawn from `seed`) of a
    larger `canvas`-sided square, when given."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    chosen = np.isin(bunch.target, keep) if keep else np.ones(len(bunch.target), dtype=bool)
    if not chosen.any():
        raise ConfigError(f"data.keep={keep} holds no digit: list some of 0 to 9")
    if canvas is None:
        x = bunch.images.astype(np.float32)[chosen, None, :, :]  # (n, channel, height, width)
    else:
        x = located.place(bunch.images, canvas, seed)[0][chosen]
    y, classes = class_indices(bunch.target[chosen])
    return RawData(x=x, y=y, task="classification", classes=classes)


SOURCES: dict[str, Callable[..., RawData]] = {
    "digits": digits,
    "located_digits": located.located_digits,
    "linear": synthetic.linear,
    "weather": synthetic.weather,
    "waves": synthetic.waves,
    "sunspots": series.sunspots,
    "table": tables.table,
    "images": images.image_folder,
    "npz": arrays_file.npz,
    "series": series.series_csv,
}


def list_sources() -> list[str]:
    return sorted(SOURCES)


def check_source_name(name: str) -> None:
    if name not in SOURCES:
        raise ConfigError(f"unknown data '{name}': choose one of {', '.join(list_sources())}")


def source_settings(data_cfg: dict) -> dict:
    """The settings `data_cfg` passes to its source, checked against what the source takes."""
    name = data_cfg["name"]
    check_source_name(name)
    settings = {key: value for key, value in data_cfg.items() if key not in COMMON}
    parameters = inspect.signature(SOURCES[name]).parameters
    for key, value in settings.items():
        if key not in parameters:
            allowed = ", ".join(parameters) or "none"
            raise ConfigError(f"data.{key} is not a setting of data '{name}': it takes {allowed}")
        if value == "???":
            raise ConfigError(f"data.{key} is required for data '{name}': set data.{key}=...")
    return settings


def load_source(data_cfg: dict) -> RawData:
    """Load the data a data config names, with its settings."""
    return SOURCES[data_cfg["name"]](**source_settings(data_cfg))
