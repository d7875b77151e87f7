"""User arrays: an .npz file holding `x` (samples first) and `y` (labels or targets)."""

import zipfile
from pathlib import Path
from typing import Literal

import numpy as np

from dlpipe.data.raw import RawData, from_arrays
from dlpipe.errors import ConfigError, DataError


def _array(arrays, name: str, file: Path) -> np.ndarray:
    if name not in arrays.files:
        raise DataError(
            f"data file {file} has no array '{name}' (it has {', '.join(arrays.files)})"
        )
    return arrays[name]


def npz(path: str, task: Literal["classification", "regression"] = "classification") -> RawData:
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
    return from_arrays(x, y, task, f"data file {file}")
