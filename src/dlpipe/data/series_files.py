"""A folder of series files, a subfolder per class, each file one series.

`path`/<class>/<name>.csv (a header row, then a row per step and a column per channel)
or .npy (an array shaped (steps,) or (steps, channels)). Every series has the first
file's steps and channels; a file that differs, or holds a value that is no finite
number, is named. As with image folders, a folder whose prepared size is above
data.shards.above_mb is prepared in shards, a shard of files at a time (see
shard_prepare), and smaller ones in memory.
"""

import functools
from pathlib import Path

import numpy as np
import pandas as pd

from dlpipe.data.images import class_files
from dlpipe.data.raw import RawData, as_stored
from dlpipe.data.shard_prepare import Listing
from dlpipe.data.shards import Layout
from dlpipe.errors import DataError

SUFFIXES = (".csv", ".npy")


def series_listing(path: str) -> Listing:
    """The series under `path`/<class>/ as a Listing, read later (see shard_prepare)."""
    classes, found = class_files(Path(path), SUFFIXES, ("series", "series files"))
    first = found[0][0]
    shape = read_series([first], None).shape[1:]
    return Listing(
        items=[file for file, _ in found],
        y=np.array([label for _, label in found], dtype=np.int64),
        classes=classes,
        layout=Layout(tuple(shape), "float32"),
        read=functools.partial(read_series, like=(first, shape)),
    )


def series_folder(path: str) -> RawData:
    """Every series under `path`/<class>/, each shaped (steps, channels)."""
    return series_listing(path).in_memory()


# Folders of series larger than memory are prepared in shards (see shard_prepare).
series_folder.listing = series_listing


def read_series(files: list, like: tuple[Path, tuple] | None) -> np.ndarray:
    """The series in `files` as one float32 array, each shaped as the first file `like`
    names (None: as the first of `files`).

    Raises:
        DataError: naming a file that cannot be read, is shaped otherwise or holds a value
            that is no finite number in float32.
    """
    arrays = []
    for file in files:
        values = _series(Path(file))
        if like is not None and values.shape != like[1]:
            (steps, channels), (first, shape) = values.shape, like
            raise DataError(
                f"series {file} has {steps} steps of {channels} channels, but {first} has "
                f"{shape[0]} of {shape[1]}: give every series the same steps and channels"
            )
        arrays.append(values)
    return np.stack(arrays)


def _series(file: Path) -> np.ndarray:
    """One series file as float32 (steps, channels)."""
    try:
        if file.suffix.lower() == ".npy":
            values = np.load(file, allow_pickle=False)
        else:
            values = pd.read_csv(file).to_numpy()
        values = np.asarray(values, dtype=np.float64)
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(f"series {file} cannot be read ({message}): replace or remove it") from exc
    if values.ndim == 1:
        values = values[:, None]
    if values.ndim != 2 or not values.size:
        raise DataError(
            f"series {file} holds an array shaped {values.shape}: give (steps,) or "
            "(steps, channels), at least one step"
        )
    stored, step = as_stored(values)
    if step is not None:
        raise DataError(
            f"series {file}, step {step + 1}: a value is not a finite number in float32: "
            "fix or remove the file"
        )
    return stored
