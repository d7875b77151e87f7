"""User arrays: an .npz file holding `x` (samples first) and `y` (labels or targets)."""

import zipfile
from pathlib import Path

import numpy as np

from dlpipe.data.raw import RawData, check_stored, class_indices
from dlpipe.errors import ConfigError, DataError


def _array(arrays, name: str, file: Path) -> np.ndarray:
    if name not in arrays.files:
        raise DataError(
            f"data file {file} has no array '{name}' (it has {', '.join(arrays.files)})"
        )
    return arrays[name]


def _check_labels(y: np.ndarray, where: str) -> None:
    """A NaN label would become a class of its own (labels stay as they are: any finite
    value names a class, however large)."""
    if not np.issubdtype(y.dtype, np.floating):
        return
    bad = np.flatnonzero(~np.isfinite(y.reshape(len(y), -1)).all(axis=1))
    if len(bad):
        raise DataError(f"{where}: y of sample {bad[0]} holds NaN or inf; fix or drop that sample")


def npz(path: str, task: str = "classification") -> RawData:
    """Arrays `x` and `y` of the .npz file at `path`, for classification or regression."""
    if task not in ("classification", "regression"):
        raise ConfigError(f"data.task must be classification or regression, got {task!r}")
    file = Path(path)
    if not file.is_file():
        raise DataError(f"data file {file} does not exist: set data.path to an .npz file")
    try:
        with np.load(file, allow_pickle=False) as arrays:
            x, y = _array(arrays, "x", file), _array(arrays, "y", file)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:  # the last two: truncated
        raise DataError(f"data file {file} cannot be read as .npz: {exc}") from exc
    if len(x) == len(y) == 0:
        raise DataError(f"data file {file} holds no samples: set data.path to a file that does")
    if len(x) != len(y):
        raise DataError(f"data file {file}: x has {len(x)} samples and y {len(y)}; they must match")
    where = f"data file {file}"
    x = check_stored(x, "x", where)
    if task == "regression":
        return RawData(x=x, y=check_stored(y.reshape(len(y), -1), "y", where), task=task)
    _check_labels(y, where)
    indices, classes = class_indices(y)
    return RawData(x=x, y=indices, task=task, classes=classes)
