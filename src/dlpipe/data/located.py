"""Classification with localisation: which digit, and where it is on a larger canvas.

The classic multi-task demo: one network answers two questions about an image, a class
and a position, from one shared body.
"""

import dataclasses
from typing import Annotated

import numpy as np

from dlpipe.config.schema.targets import Range
from dlpipe.data.raw import RawData, Target, class_indices, multitask
from dlpipe.errors import ConfigError

DIGIT_SIDE = 8
# scikit-learn's digits run from 0 (blank) to 16 (full ink).
PIXEL_RANGE = 16.0


def located_digits(
    canvas: Annotated[int, Range(ge=8)] = 16, seed: Annotated[int, Range(ge=0)] = 0
) -> RawData:
    """scikit-learn's 1797 digits, each placed at a random spot of a `canvas`-sided square.

    Targets: `digit` (10 classes) and `position`, the digit's centre (row, column) in pixels.
    """
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x, corners = place(bunch.images, canvas, seed)
    labels, classes = class_indices(bunch.target)
    centres = (corners + (DIGIT_SIDE - 1) / 2).astype(np.float32)
    found = multitask(x, [Target("digit", labels, classes), Target("position", centres)])
    return dataclasses.replace(found, pixel_range=PIXEL_RANGE)


def place(images: np.ndarray, canvas: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """8x8 `images` each at a random spot of a blank `canvas`-sided square: the canvases
    (n, 1, canvas, canvas) and the top-left corners (n, 2) they were put at."""
    if isinstance(canvas, bool) or not isinstance(canvas, int) or canvas < DIGIT_SIDE:
        raise ConfigError(f"data.canvas must be a whole number of pixels >= 8, got {canvas!r}")
    count = len(images)
    corners = np.random.default_rng(seed).integers(0, canvas - DIGIT_SIDE + 1, size=(count, 2))
    x = np.zeros((count, 1, canvas, canvas), dtype=np.float32)
    for sample, (row, col) in enumerate(corners):
        x[sample, 0, row : row + DIGIT_SIDE, col : col + DIGIT_SIDE] = images[sample]
    return x, corners
