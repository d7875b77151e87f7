"""INPUT of `dlpipe predict` as a model's raw inputs: a CSV or Parquet table, an .npz
(array `x`), an image, or a folder of images.

A table model takes the training table's feature columns by name (others, such as the
target, are left out). Any other model takes samples shaped as its training inputs: from
an .npz, or from a table with one column per value (an image's pixels, flattened). Images
are read as the training read them: resized, in grey or colour, on the training data's
pixel scale. Columns of a table or arrays of an .npz (an id, say) can be carried, as read,
into the predictions. Errors say what is wrong without naming the file; the command adds it.
"""

import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from dlpipe.data import images, tables
from dlpipe.errors import DataError
from dlpipe.serving import text, transform


def read_input(
    path: Path, settings: dict, keep: Sequence[str] = ()
) -> tuple[pd.DataFrame | np.ndarray, pd.DataFrame | None]:
    """The raw inputs in `path` for the model `settings` describe, and what each row's
    prediction carries: its image file when `path` holds images, else the table's columns
    (or the .npz's arrays) named in `keep`, as strings as read."""
    if path.is_dir():
        found = sorted(file for file in path.rglob("*") if file.suffix.lower() in images.SUFFIXES)
        if not found:
            raise DataError(f"holds no image files ({', '.join(images.SUFFIXES)})")
        files = [file.relative_to(path).as_posix() for file in found]
        return _images(found, settings, keep), pd.DataFrame({"file": files})
    if not path.is_file():
        raise DataError("does not exist")
    suffix = path.suffix.lower()
    if suffix in tables.READERS:
        frame = _frame(path)
        carried = _carried(frame, keep, "column", len(frame))
        return _table(frame, settings, keep), carried
    if suffix == ".npz":
        x, carried = _arrays(path, keep)
        return _samples(x, settings), carried
    if suffix in images.SUFFIXES:
        return _images([path], settings, keep), pd.DataFrame({"file": [path.name]})
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


def _carried(found, keep: Sequence[str], kind: str, samples: int) -> pd.DataFrame | None:
    """The `keep` columns of table `found` (or arrays of an .npz), each one value per
    sample, as strings: they are written back as read, whatever their type."""
    if not keep:
        return None
    has, carried = list(found.keys()), {}
    for name in keep:
        if name not in has:
            raise DataError(f"has no {kind} '{name}' to keep (it has {', '.join(map(str, has))})")
        carried[name] = np.asarray(found[name])
        if carried[name].shape != (samples,):
            raise DataError(
                f"{kind} '{name}' is shaped {transform.dims(carried[name].shape)}: keep "
                f"{kind}s of one value per sample ({samples})"
            )
    return pd.DataFrame(carried).astype("string")


def _table(frame: pd.DataFrame, settings: dict, keep: Sequence[str]) -> pd.DataFrame | np.ndarray:
    """A table model's columns, typed as its signature has them; else one value a column
    (the columns kept for the output aside); a text model's texts."""
    if settings.get("text"):
        column = settings["text"]["column"]
        return pd.DataFrame({column: text.texts_of(frame, column)})
    columns = settings["columns"]
    if not columns:
        names = [name for name in frame.columns if name not in keep]
        # A padded series' row may end in empty cells.
        empty = settings.get("padded", False)
        values = np.stack([transform.numbers(frame[name], empty) for name in names], axis=1)
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


def _arrays(path: Path, keep: Sequence[str]) -> tuple[np.ndarray, pd.DataFrame | None]:
    """Array `x`, and the arrays to keep."""
    try:
        with np.load(path, allow_pickle=False) as arrays:
            if "x" not in arrays.files:
                raise DataError(f"holds no array 'x' (it has {', '.join(arrays.files) or 'none'})")
            x = arrays["x"]
            return x, _carried(arrays, keep, "array", len(x))
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:  # the last two: truncated
        raise DataError(f"cannot be read as .npz: {exc}") from exc


def _samples(x: np.ndarray, settings: dict) -> np.ndarray:
    if settings["columns"]:
        raise DataError("holds arrays, but the model takes a table's columns: give a CSV")
    return transform.as_samples(x, settings["input_shape"], settings.get("padded", False)).astype(
        np.float32
    )


def _images(found: list[Path], settings: dict, keep: Sequence[str]) -> np.ndarray:
    if keep:
        raise DataError("holds images, which have no columns to keep: the output names each file")
    shape, scale = settings["input_shape"], settings["pixel_range"]
    if scale is None or len(shape) != 3 or shape[0] not in images.MODES:
        raise DataError(
            f"holds images, but the model was trained on {transform.dims(shape)} inputs that "
            "are not images"
        )
    channels, height, width = shape
    pixels = images.read_images(found, (height, width), images.MODES[channels])
    # In [0, 1] as the training read them (8-bit over 255), then at the model's scale.
    return (pixels.astype(np.float32) / np.float32(255) * scale).astype(np.float32)
