"""User tables: CSV or Parquet files of feature columns and one or more target columns.

Categorical feature columns (listed in `data.categorical`, or holding no number at all)
are one-hot encoded. Every other feature column must be numeric and finite in float32
(the type data is prepared in), and no category or label may be missing; the first value
that breaks this is named with its file, column and row.
"""

import dataclasses
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
import pandas as pd

from dlpipe.config.schema.targets import Range
from dlpipe.data.raw import (
    BEYOND_FLOAT32,
    HEAD_TASKS,
    RawData,
    Target,
    as_stored,
    class_indices,
    multitask,
)
from dlpipe.errors import ConfigError, DataError

READERS = {".csv": pd.read_csv, ".parquet": pd.read_parquet, ".pq": pd.read_parquet}
_FILL_OR_REPLACE = "add a header row and data rows, or set data.path to another file"
_FIX_ROW = "fix or drop that row"
# What a target column is learnt as (dlpipe.data.raw.HEAD_TASKS).
HeadTask = Literal["classification", "regression"]
# The values of a split column (data.split.column), each row's split.
SPLIT_NAMES = ("train", "val", "test")


def read_frame(path: Path) -> pd.DataFrame:
    """The table at `path`, or a DataError naming the file and what is wrong with it."""
    if not path.is_file():
        raise DataError(f"data file {path} does not exist: set data.path to a CSV or Parquet file")
    reader = READERS.get(path.suffix.lower())
    if reader is None:
        raise DataError(f"data file {path} is not CSV or Parquet: use one of {', '.join(READERS)}")
    try:
        frame = reader(path)
    except pd.errors.EmptyDataError as exc:  # not even a header row
        raise DataError(f"data file {path} is empty: {_FILL_OR_REPLACE}") from exc
    except Exception as exc:  # a parser's own error types vary by format and engine
        raise DataError(f"data file {path} cannot be read: {str(exc).splitlines()[0]}") from exc
    if frame.empty:
        raise DataError(f"data file {path} holds no rows: {_FILL_OR_REPLACE}")
    return frame


def require_columns(frame: pd.DataFrame, columns: list[str], path: Path, setting: str) -> None:
    for column in columns:
        if column not in frame.columns:
            raise DataError(
                f"data file {path} has no column '{column}' (it has {', '.join(map(str, frame))}): "
                f"set {setting}"
            )


def split_assignment(
    frame: pd.DataFrame, column: str, path: Path, first_row: int = 0
) -> np.ndarray:
    """Column `column` of `frame` as each row's split name, a str array of 'train', 'val'
    or 'test' (case and surrounding spaces ignored), or a DataError naming the first row
    that holds anything else, with its file and column (`frame` starting at row
    `first_row` of the file)."""
    require_columns(
        frame, [column], path, "data.split.column to the column naming each row's split"
    )
    names = frame[column].astype(str).str.strip().str.lower().to_numpy()
    bad = np.flatnonzero(~np.isin(names, SPLIT_NAMES) | frame[column].isna().to_numpy())
    if len(bad):
        row = int(bad[0])
        raise DataError(
            f"data file {path}, column '{column}', row {first_row + row + 1}: the split is "
            f"{_shown(frame[column].iloc[row])}; each row's split must be one of "
            f"{', '.join(SPLIT_NAMES)}: fix that row or set data.split.column to another column"
        )
    return names.astype(str)


def numeric_column(frame: pd.DataFrame, column: str, path: Path, first_row: int = 0) -> np.ndarray:
    """`column` as float32, or a DataError naming the first value that is not a finite
    number, or is one that float32 cannot hold (`frame` starting at row `first_row`)."""
    values = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=np.float64)
    stored, row = as_stored(values)
    if row is not None:
        problem = (
            f"is {BEYOND_FLOAT32}; rescale that column or fix that row"
            if np.isfinite(values[row])
            else f"is not a finite number; {_FIX_ROW}"
        )
        raise DataError(
            f"data file {path}, column '{column}', row {first_row + row + 1}: "
            f"{_shown(frame[column].iloc[row])} {problem}"
        )
    return stored


def check_no_missing(
    frame: pd.DataFrame, column: str, path: Path, what: str, first_row: int = 0
) -> None:
    """A category or label must be given: a missing one would silently become a class 'nan'."""
    values = frame[column]
    missing = values.isna().to_numpy()
    if pd.api.types.is_numeric_dtype(values):  # an infinite label is no class either
        missing = missing | ~np.isfinite(values.to_numpy(dtype=np.float64))
    if missing.any():
        row = int(np.flatnonzero(missing)[0])
        raise DataError(
            f"data file {path}, column '{column}', row {first_row + row + 1}: the {what} is "
            f"{_shown(values.iloc[row])}; {_FIX_ROW}"
        )


def _shown(cell: object) -> str:
    if pd.isna(cell):
        return "an empty or missing value"
    return repr(cell.item() if isinstance(cell, np.generic) else cell)


def is_categorical(series: pd.Series, listed: list[str]) -> bool:
    """Whether a feature column is one-hot encoded: listed in `listed` or holding no number."""
    if series.name in listed:
        return True
    if pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series):
        return False
    # Text with no number in it at all is a category; text mixed with numbers is a mistake.
    return pd.to_numeric(series, errors="coerce").isna().all()


def _features(
    frame: pd.DataFrame, path: Path, categorical: list[str]
) -> tuple[np.ndarray, list[list]]:
    """The feature columns as numbers, and what each is (see RawData.features)."""
    columns, names = [], []
    for name in frame.columns:
        if is_categorical(frame[name], categorical):
            check_no_missing(frame, name, path, "category")
            codes = pd.get_dummies(frame[name].astype(str), dtype=np.float64)
            columns.append(codes.to_numpy())
            names.extend([str(name), str(category)] for category in codes.columns)
        else:
            columns.append(numeric_column(frame, name, path)[:, None])
            names.append([str(name), None])
    return np.concatenate(columns, axis=1).astype(np.float32), names


def table(
    path: str,
    target: Annotated[str | list[str], Range(nonempty=True)],
    task: HeadTask | list[HeadTask] = "classification",
    categorical: list[str] | None = None,
    split_column: str | None = None,
) -> RawData:
    """The table at `path`: `target` is predicted from every other column.

    Several target columns (a list, with a task each or one for all) make multi-task data:
    a head per target on one shared body. `split_column` (set by data.split.column) names
    a column saying which split each row belongs to; it is no feature.
    """
    targets = list(target) if isinstance(target, list) else [target]
    tasks = list(task) if isinstance(task, list) else [task] * len(targets)
    if len(tasks) != len(targets):
        raise ConfigError(
            f"data.task lists {len(tasks)} tasks for {len(targets)} targets: give one per "
            "data.target, or a single task for all"
        )
    for each in tasks:
        if each not in HEAD_TASKS:
            raise ConfigError(f"data.task must be classification or regression, got {each!r}")
    file = Path(path)
    frame = read_frame(file)
    assigned = None
    if split_column is not None:
        assigned = split_assignment(frame, split_column, file)
        frame = frame.drop(columns=split_column)
    listed = list(categorical or [])
    require_columns(frame, [*targets, *listed], file, "data.target and data.categorical")
    x, features = _features(frame.drop(columns=targets), file, listed)
    found = [
        _target(frame, column, kind, file) for column, kind in zip(targets, tasks, strict=True)
    ]
    if len(found) > 1:
        return dataclasses.replace(multitask(x, found), split=assigned, features=features)
    (only,) = found
    y = only.values if only.classes else only.values[:, None]
    return RawData(
        x=x, y=y, task=only.task, classes=only.classes, split=assigned, features=features
    )


def _target(frame: pd.DataFrame, column: str, task: str, file: Path) -> Target:
    """Column `column` as regression values, or as class indices with the class names."""
    if task == "regression":
        return Target(column, numeric_column(frame, column, file))
    check_no_missing(frame, column, file, "label")
    labels = frame[column]
    numeric = pd.api.types.is_numeric_dtype(labels)
    y, classes = class_indices(labels.to_numpy() if numeric else labels.astype(str).to_numpy())
    return Target(column, y, classes)
