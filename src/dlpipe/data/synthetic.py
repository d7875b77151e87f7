"""Data generated from a fixed seed: the classic small demos of a deep-learning course."""

import itertools
from typing import Annotated

import numpy as np

from dlpipe.config.schema.targets import Range
from dlpipe.data.raw import RawData

WEATHER_INPUTS = ("clear", "light", "warm")


def linear(
    samples: Annotated[int, Range(gt=0)] = 200,
    noise: Annotated[float, Range(ge=0)] = 0.1,
    seed: Annotated[int, Range(ge=0)] = 0,
) -> RawData:
    """y = 3x + 1 plus Gaussian noise, x uniform in [-1, 1]: a line for a neuron to fit."""
    generator = np.random.default_rng(seed)
    x = generator.uniform(-1, 1, size=(samples, 1)).astype(np.float32)
    y = (3 * x + 1 + generator.normal(0, noise, size=(samples, 1))).astype(np.float32)
    return RawData(x=x, y=y, task="regression")


def go_outside(clear: int, light: int, warm: int) -> int:
    """The weather demo's rule: go outside when it is light, and clear or warm."""
    return int(light and (clear or warm))


def weather(copies: Annotated[int, Range(gt=0)] = 25) -> RawData:
    """The truth table of (clear, light, warm) -> go outside, each of its 8 rows `copies` times.

    The rule is linearly separable, so a single neuron can learn every row of it.
    """
    table = list(itertools.product((0, 1), repeat=len(WEATHER_INPUTS)))
    x = np.array(table * copies, dtype=np.float32)
    y = np.array([go_outside(*row) for row in table] * copies, dtype=np.int64)
    return RawData(x=x, y=y, task="classification", classes=["stay in", "go outside"])


WAVES = ("sine", "square", "triangle", "sawtooth")


def waves(
    samples: Annotated[int, Range(gt=0)] = 1200,
    steps: Annotated[int, Range(gt=0)] = 32,
    noise: Annotated[float, Range(ge=0)] = 0.15,
    seed: Annotated[int, Range(ge=0)] = 0,
) -> RawData:
    """Sequence classification: which of WAVES a noisy, randomly scaled and shifted signal is."""
    generator = np.random.default_rng(seed)
    kind = np.arange(samples) % len(WAVES)
    cycles = generator.uniform(1.5, 4.0, size=(samples, 1))
    phase = generator.uniform(0, 1, size=(samples, 1))
    position = (np.arange(steps)[None, :] / steps * cycles + phase) % 1.0
    shapes = np.stack(
        [
            np.sin(2 * np.pi * position),
            np.where(position < 0.5, 1.0, -1.0),
            4 * np.abs(position - 0.5) - 1,
            2 * position - 1,
        ]
    )
    signal = shapes[kind, np.arange(samples)] * generator.uniform(0.5, 2.0, size=(samples, 1))
    signal += generator.normal(0, noise, size=signal.shape)
    return RawData(
        x=signal[:, :, None].astype(np.float32),
        y=kind.astype(np.int64),
        task="classification",
        classes=list(WAVES),
    )
