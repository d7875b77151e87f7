"""INPUT of `dlpipe predict` as a model's raw inputs: a CSV or Parquet table, an .npz
(array `x`), an image, or a folder of images.

A table model takes the training table's feature columns by name (others, such as the
target, are left out). Any other model takes samples shaped as its training inputs: from
an .npz, or from a table with one column per value (an image's pixels, flattened). Images
are read as the training read them: resized, in grey or colour, on the training data's
pixel scale. Errors say what is wrong without naming the file; the command adds it.
"""

import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from dlpipe.data import images, tables
from dlpipe.errors import DataError
from dlpipe.serving import transform


def read_input(path: Path, settings: dict) -> tuple[pd.DataFrame | np.ndarray, list[str] | None]:
    """The raw inputs in `path` for the model `settings` describe, and each row's image
    file when `path` holds images."""
    if path.is_dir():
        found = sorted(file for file in path.rglob("*") if file.suffix.lower() in images.SUFFIXES)
        if not found:
            raise DataError(f"holds no image files ({', '.join(images.SUFFIXES)})")
        return _images(found, settings), [file.relative_to(path).as_posix() for file in found]
    if not path.is_file():
        raise DataError("does not exist")
    suffix = path.suffix.lower()
    if suffix in tables.READERS:
        return _table(_frame(path), settings), None
    if suffix == ".npz":
        return _samples(_array(path), settings), None
    if suffix in images.SUFFIXES:
        return _images([path], settings), [path.name]
    kinds = ", ".join([*tables.READERS, ".npz", *images.SUFFIXES])
    raise DataError(f"is not a table, .npz or image file: give one of {kinds}, or a folder")


def _frame(path: Path) -> pd.DataFrame:
    try:
        frame = tables.READERS[path.suffix.lower()](path)
    except pd.errors.EmptyDataError as exc:
        raise DataError("is empty: give a header row and a row per sample") from exc
    except Exception as exc:  # each format and engine raises its own types
        raise DataError(f"cannot be read: {str(exc).splitlines()[0]}") from exc
    if frame.empty:
        raise DataError("holds no rows: give a row per sample")
    return frame


def _table(frame: pd.DataFrame, settings: dict) -> pd.DataFrame | np.ndarray:
    """A table model's columns, typed as its signature has them; else one value a column."""
    columns = settings["columns"]
    if not columns:
        values = np.stack([transform.numbers(frame[name]) for name in frame.columns], axis=1)
        return _samples(values, settings)
    transform.encode_table(frame, columns)  # refuses what the model cannot take, by row
    return pd.DataFrame(
        {
            column["name"]: frame[column["name"]].astype(str)
            if column["categories"]
            else frame[column["name"]].astype(np.float64)
            for column in columns
        }
    )


def _array(path: Path) -> np.ndarray:
    try:
        with np.load(path, allow_pickle=False) as arrays:
            if "x" not in arrays.files:
                raise DataError(f"holds no array 'x' (it has {', '.join(arrays.files) or 'none'})")
            return arrays["x"]
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:  # the last two: truncated
        raise DataError(f"cannot be read as .npz: {exc}") from exc


def _samples(x: np.ndarray, settings: dict) -> np.ndarray:
    if settings["columns"]:
        raise DataError("holds arrays, but the model takes a table's columns: give a CSV")
    return transform.as_samples(x, settings["input_shape"]).astype(np.float32)


def _images(found: list[Path], settings: dict) -> np.ndarray:
    shape, scale = settings["input_shape"], settings["pixel_range"]
    if scale is None or len(shape) != 3 or shape[0] not in images.MODES:
        raise DataError(
            f"holds images, but the model was trained on {transform.dims(shape)} inputs that "
            "are not images"
        )
    channels, height, width = shape
    read = [images.read_image(file, (height, width), images.MODES[channels]) for file in found]
    return (np.stack(read) * scale).astype(np.float32)
