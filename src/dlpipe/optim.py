"""Optimisers by name, built from the flat settings of an `optim` config group."""

from collections.abc import Iterable

import torch

from dlpipe.errors import ConfigError

OPTIMIZERS = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam}


def build_optimizer(params: Iterable, name: str, **settings) -> torch.optim.Optimizer:
    if name not in OPTIMIZERS:
        raise ConfigError(f"unknown optim '{name}': choose one of {', '.join(sorted(OPTIMIZERS))}")
    try:
        return OPTIMIZERS[name](params, **settings)
    except TypeError as exc:
        raise ConfigError(f"optim '{name}' does not take these settings ({exc})") from exc
