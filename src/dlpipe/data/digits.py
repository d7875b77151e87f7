"""scikit-learn's bundled 8x8 handwritten digits, as they are or placed on a larger canvas."""

from typing import Annotated

import numpy as np

from dlpipe.config.schema.targets import Range
from dlpipe.data import located
from dlpipe.data.raw import RawData, class_indices
from dlpipe.errors import ConfigError


def digits(
    keep: Annotated[list[int] | None, Range(ge=0, le=9)] = None,
    canvas: Annotated[int | None, Range(ge=8)] = None,
    seed: Annotated[int, Range(ge=0)] = 0,
) -> RawData:
    """1797 images, 10 classes; only the digits in `keep`, when given; each placed at a
    random spot (drawn from `seed`) of a larger `canvas`-sided square, when given."""
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
    return RawData(
        x=x, y=y, task="classification", classes=classes, pixel_range=located.PIXEL_RANGE
    )
