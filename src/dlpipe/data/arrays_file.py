"""User arrays: an .npz file holding `x` (samples first) and `y` (labels or targets)."""

from pathlib import Path

import numpy as np

from dlpipe.data.raw import RawData, class_indices
from dlpipe.errors import ConfigError, DataError


def _array(arrays, name: str, file: Path) -> np.ndarray:
    if name not in arrays.files:
        raise DataError(
            f"data file {file} has no array '{name}' (it has {', '.join(arrays.files)})"
        )
    return arrays[name]


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
    except (OSError, ValueError) as exc:
        raise DataError(f"data file {file} cannot be read as .npz: {exc}") from exc
    if len(x) != len(y) or len(x) == 0:
        raise DataError(f"data file {file}: x has {len(x)} samples and y {len(y)}; they must match")
    x = x.astype(np.float32)
    bad = np.flatnonzero(~np.isfinite(x.reshape(len(x), -1)).all(axis=1))
    if len(bad):
        raise DataError(f"data file {file}: x of sample {bad[0]} holds NaN or inf")
    if task == "regression":
        y = y.reshape(len(y), -1).astype(np.float32)
        if not np.isfinite(y).all():
            raise DataError(f"data file {file}: y holds NaN or inf")
        return RawData(x=x, y=y, task=task)
    indices, classes = class_indices(y)
    return RawData(x=x, y=indices, task=task, classes=classes)
