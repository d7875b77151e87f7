"""Time series cut into windows for forecasting: `window` steps in, the next `horizon` out."""

from pathlib import Path
from typing import Annotated

import numpy as np

from dlpipe.config.schema.targets import Range
from dlpipe.data.raw import RawData
from dlpipe.data.tables import numeric_column, read_frame, require_columns
from dlpipe.errors import ConfigError, DataError


def windows(series: np.ndarray, window: int, horizon: int, name: str) -> RawData:
    """Every run of `window` consecutive values, each followed by its next `horizon` values.

    `series` is (steps,) or (steps, features); the target is its first feature.
    """
    values = series.reshape(len(series), -1).astype(np.float32)
    count = len(values) - window - horizon + 1
    if window < 1 or horizon < 1:
        raise ConfigError(f"data.window={window} and data.horizon={horizon} must be at least 1")
    if count < 10:
        raise DataError(
            f"{name} has {len(values)} steps: too few for windows of {window} + {horizon} "
            "(at least 10 are needed); lower data.window"
        )
    starts = np.arange(count)[:, None]
    x = values[starts + np.arange(window)]
    y = values[starts + window + np.arange(horizon), 0]
    return RawData(x=x, y=y, task="forecasting")


def sunspots(
    window: Annotated[int, Range(gt=0)] = 24, horizon: Annotated[int, Range(gt=0)] = 1
) -> RawData:
    """Yearly mean sunspot numbers 1700-2008, shipped inside statsmodels."""
    from statsmodels.datasets import sunspots as bundled

    values = bundled.load_pandas().data["SUNACTIVITY"].to_numpy()
    return windows(values, window, horizon, "sunspots")


def series_csv(
    path: str,
    column: str,
    window: Annotated[int, Range(gt=0)] = 24,
    horizon: Annotated[int, Range(gt=0)] = 1,
) -> RawData:
    """A user's series: `column` of the CSV or Parquet file at `path`, rows in time order."""
    frame = read_frame(Path(path))
    require_columns(frame, [column], Path(path), "data.column")
    values = numeric_column(frame, column, Path(path))
    return windows(values, window, horizon, str(path))
