"""A user's series and sequences from a CSV or Parquet file, as samples (n, steps, channels).

Two layouts: wide (`series_rows`), one row per series, its values in the time columns in
file order (the UCR archive's files, converted to CSV: a class column then t0..tN); long
(`series_long`), one row per series id and time step, a column per channel. Each series is
classified by its label, regressed onto its target, or (forecasting) its last `horizon`
values are predicted from the steps before them.

Series of different lengths need a rule (`ragged`): `pad` fills each at its end with steps
of all NaN (RawData.padded: the prepare stage and the models know such steps), `truncate`
cuts all to the shortest.
"""

from pathlib import Path
from typing import Annotated, Literal

import numpy as np
import pandas as pd

from dlpipe.config.schema.targets import Range
from dlpipe.data.raw import BEYOND_FLOAT32, FLOAT32_MAX, RawData, class_indices
from dlpipe.data.tables import (
    numeric_column,
    read_frame,
    require_columns,
    split_assignment,
)
from dlpipe.errors import ConfigError, DataError

SeriesTask = Literal["classification", "regression", "forecasting"]
Ragged = Literal["pad", "truncate"]
Horizon = Annotated[int, Range(gt=0)]


def series_rows(
    path: str,
    target: str | None = None,
    task: SeriesTask = "classification",
    horizon: Horizon = 1,
    ragged: Ragged | None = None,
    split_column: str | None = None,
) -> RawData:
    """The wide file at `path`: each row a series, its values in every column but `target`
    (and `split_column`), in file order. A shorter series leaves its last cells empty.

    Forecasting predicts each series' last `horizon` values from the steps before them;
    a `target` column, if named, is then left out.
    """
    file = Path(path)
    frame = read_frame(file)
    _check_target(target, task)
    aside = [name for name in (target, split_column) if name is not None]
    require_columns(frame, aside, file, "data.target and data.split.column")
    times = [name for name in frame.columns if name not in aside]
    if not times:
        raise DataError(f"data file {file} has no time columns beside {', '.join(aside)}")
    values = np.stack([_cells(frame, name, file) for name in times], axis=1)
    names = [f"row {row + 1}" for row in range(len(frame))]
    series = [_row_series(row, name, times, file) for row, name in zip(values, names, strict=True)]
    labels = frame if task != "forecasting" else None
    split = split_assignment(frame, split_column, file) if split_column else None
    return _samples(series, names, labels, target, task, horizon, ragged, split, file)


def series_long(
    path: str,
    id: str,
    time: str,
    values: str | list[str],
    target: str | None = None,
    task: SeriesTask = "classification",
    horizon: Horizon = 1,
    ragged: Ragged | None = None,
    split_column: str | None = None,
) -> RawData:
    """The long file at `path`: a row per series `id` and `time` step, a channel per column
    of `values`; rows are ordered by time within each id, ids kept in order of appearance.
    `target` and `split_column` hold one value per id.

    Forecasting predicts each series' last `horizon` values of its first channel from the
    steps before them.
    """
    file = Path(path)
    frame = read_frame(file)
    _check_target(target, task)
    channels = [values] if isinstance(values, str) else list(values)
    per_id = [name for name in (target, split_column) if name is not None]
    require_columns(frame, [id], file, "data.id")
    require_columns(frame, [time], file, "data.time")
    require_columns(frame, channels, file, "data.values")
    require_columns(frame, per_id, file, "data.target and data.split.column")
    _check_given(frame, id, file, "series id")
    frame = frame.assign(_time=numeric_column(frame, time, file))
    cells = np.stack([numeric_column(frame, name, file) for name in channels], axis=1)
    groups = frame.groupby(id, sort=False, dropna=False).indices
    series, names, first = [], [], []
    for key, rows in groups.items():
        rows = rows[np.argsort(frame["_time"].to_numpy()[rows], kind="stable")]
        _check_times(frame, rows, key, id, time, file)
        for column in per_id:
            _check_constant(frame, rows, key, id, column, file)
        series.append(cells[rows])
        names.append(f"id {key!r}")
        first.append(rows[0])
    heads = frame.iloc[first].reset_index(drop=True)
    labels = heads if task != "forecasting" else None
    split = split_assignment(heads, split_column, file) if split_column else None
    return _samples(series, names, labels, target, task, horizon, ragged, split, file)


def z_normalised(x: np.ndarray) -> np.ndarray:
    """Each series of `x` (samples, steps, channels; or samples, steps) scaled per channel
    to mean 0 and standard deviation 1 over its own steps, padding (NaN) left out and left
    NaN; a constant series becomes zeros."""
    if x.ndim not in (2, 3):
        raise ConfigError(
            f"data.normalise=series scales sequences (samples, steps, channels), but the "
            f"data's samples are shaped {list(x.shape[1:])}: use data.normalise=true"
        )
    values = x.astype(np.float64)
    mean = np.nanmean(values, axis=1, keepdims=True)
    std = np.nanstd(values, axis=1, keepdims=True)
    return ((values - mean) / np.where(std == 0, 1.0, std)).astype(np.float32)


def _check_target(target: str | None, task: str) -> None:
    if target is None and task != "forecasting":
        raise ConfigError(
            f"data.target is null, but {task} needs a column per series to learn: name it "
            "(data.target=label), or set data.task=forecasting"
        )


def _cells(frame: pd.DataFrame, column: str, path: Path) -> np.ndarray:
    """A time column as float64, empty cells NaN; a DataError names any other value that
    is no finite number float32 can hold."""
    given = frame[column]
    values = pd.to_numeric(given, errors="coerce").to_numpy(dtype=np.float64)
    with np.errstate(invalid="ignore"):
        bad = (np.isnan(values) & given.notna().to_numpy()) | np.isinf(values)
        huge = np.isfinite(values) & (np.abs(values) > FLOAT32_MAX)
    if (bad | huge).any():
        row = int(np.flatnonzero(bad | huge)[0])
        problem = BEYOND_FLOAT32 if huge[row] else "not a finite number"
        cell = given.iloc[row]
        raise DataError(
            f"data file {path}, column '{column}', row {row + 1}: "
            f"{cell.item() if isinstance(cell, np.generic) else cell!r} is "
            f"{problem}; every column but data.target holds the series' values: fix that row"
        )
    return values


def _row_series(row: np.ndarray, name: str, times: list, path: Path) -> np.ndarray:
    """A wide row's values up to its last filled cell, as (steps, 1); a gap is an error."""
    filled = np.flatnonzero(~np.isnan(row))
    if not len(filled):
        raise DataError(f"data file {path}, {name}: holds no values; fill or drop that row")
    length = filled[-1] + 1
    gaps = np.flatnonzero(np.isnan(row[:length]))
    if len(gaps):
        raise DataError(
            f"data file {path}, {name}, column '{times[gaps[0]]}': empty in the middle of the "
            "series (only its last cells may be empty, a shorter series); fill that cell"
        )
    return row[:length, None]


def _check_given(frame: pd.DataFrame, column: str, path: Path, what: str) -> None:
    missing = np.flatnonzero(frame[column].isna().to_numpy())
    if len(missing):
        raise DataError(
            f"data file {path}, column '{column}', row {missing[0] + 1}: the {what} is "
            "empty; fill or drop that row"
        )


def _check_times(frame, rows: np.ndarray, key, id_column: str, time: str, path: Path) -> None:
    times = frame["_time"].to_numpy()[rows]
    repeated = np.flatnonzero(times[1:] == times[:-1])
    if len(repeated):
        row = rows[repeated[0] + 1]
        raise DataError(
            f"data file {path}, column '{time}', row {row + 1}: {id_column} {key!r} has time "
            f"{times[repeated[0]]:g} twice; each series needs one row per time step"
        )


def _check_constant(frame, rows: np.ndarray, key, id_column: str, column: str, path: Path):
    """A per-series column (target, split) must hold one value for all of a series' rows."""
    held = frame[column].iloc[rows].astype(str).to_numpy()
    other = np.flatnonzero(held != held[0])
    if len(other):
        raise DataError(
            f"data file {path}, column '{column}': {id_column} {key!r} holds {held[0]!r} "
            f"and {held[other[0]]!r} (rows {rows[0] + 1} and {rows[other[0]] + 1}); it must "
            "hold one value per series: fix those rows"
        )


def _samples(
    series: list[np.ndarray],
    names: list[str],
    labels: pd.DataFrame | None,
    target: str | None,
    task: str,
    horizon: int,
    ragged: str | None,
    split: np.ndarray | None,
    path: Path,
) -> RawData:
    """Series (each (steps, channels)) as RawData: of one length by the `ragged` rule,
    with their targets (a column of `labels`, a row per series) or their last values."""
    series = _one_length(series, names, ragged, path)
    if task == "forecasting":
        series, y = _forecast(series, names, horizon, path)
        classes = None
    elif task == "regression":
        y, classes = numeric_column(labels, target, path)[:, None], None
    else:
        y, classes = _classes(labels, target, path)
    x, padded = _padded(series)
    return RawData(x=x, y=y, task=task, classes=classes, split=split, padded=padded)


def _one_length(
    series: list[np.ndarray], names: list[str], ragged: str | None, path: Path
) -> list[np.ndarray]:
    """Series cut to the shortest (`truncate`), or left for padding (`pad`); of different
    lengths without a rule, a DataError naming one that differs."""
    lengths = np.array([len(one) for one in series])
    shortest, longest = int(lengths.min()), int(lengths.max())
    if shortest == longest or ragged == "pad":
        return series
    if ragged == "truncate":
        return [one[:shortest] for one in series]
    counts = np.bincount(lengths)  # the most common length, the longer of a tie
    common = len(counts) - 1 - int(counts[::-1].argmax())
    odd = int(np.flatnonzero(lengths != common)[0])
    raise DataError(
        f"data file {path}: the series of {names[odd]} has {lengths[odd]} steps, most have "
        f"{common} (from {shortest} to {longest}): series of different lengths need "
        f"data.ragged=pad (fill each to {longest} steps with NaN at its end) or "
        f"data.ragged=truncate (cut all to {shortest})"
    )


def _forecast(
    series: list[np.ndarray], names: list[str], horizon: int, path: Path
) -> tuple[list[np.ndarray], np.ndarray]:
    """Each series' steps before its last `horizon`, and those last values of its first
    channel, the target."""
    short = [index for index, one in enumerate(series) if len(one) <= horizon]
    if short:
        raise DataError(
            f"data file {path}: the series of {names[short[0]]} has {len(series[short[0]])} "
            f"steps, too few to forecast {horizon} from the steps before them; lower "
            "data.horizon or drop that series"
        )
    y = np.stack([one[-horizon:, 0] for one in series]).astype(np.float32)
    return [one[:-horizon] for one in series], y


def _classes(labels: pd.DataFrame, target: str, path: Path) -> tuple[np.ndarray, list[str]]:
    column = labels[target]
    missing = np.flatnonzero(column.isna().to_numpy())
    if len(missing):
        raise DataError(
            f"data file {path}, column '{target}': the label of series {missing[0] + 1} is "
            "empty; fill or drop that series"
        )
    numeric = pd.api.types.is_numeric_dtype(column)
    return class_indices(column.to_numpy() if numeric else column.astype(str).to_numpy())


def _padded(series: list[np.ndarray]) -> tuple[np.ndarray, bool]:
    """(samples, longest, channels) float32, shorter series filled at their end with NaN;
    and whether any was."""
    longest = max(len(one) for one in series)
    x = np.full((len(series), longest, series[0].shape[1]), np.nan, dtype=np.float32)
    for index, one in enumerate(series):
        x[index, : len(one)] = one
    return x, any(len(one) < longest for one in series)
