"""Built-in data sources. Each ships inside an installed package: nothing is downloaded."""

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from dlpipe.errors import ConfigError


@dataclass(frozen=True)
class RawData:
    """Features `x` (first axis: samples), integer labels `y` and the class names."""

    x: np.ndarray
    y: np.ndarray
    classes: list[str]


def _digits() -> RawData:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = bunch.images.astype(np.float32)[:, None, :, :]  # (n, channel, height, width)
    return RawData(
        x=x, y=bunch.target.astype(np.int64), classes=[str(c) for c in bunch.target_names]
    )


_SOURCES: dict[str, Callable[[], RawData]] = {"digits": _digits}


def list_sources() -> list[str]:
    return sorted(_SOURCES)


def check_source_name(name: str) -> None:
    if name not in _SOURCES:
        raise ConfigError(f"unknown data '{name}': choose one of {', '.join(list_sources())}")


def load_source(name: str) -> RawData:
    """Load a built-in data set by name."""
    check_source_name(name)
    return _SOURCES[name]()
