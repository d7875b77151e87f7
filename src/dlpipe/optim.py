"""Optimisers by name, built from the flat settings of an `optim` config group."""

from collections.abc import Iterable

import torch

from dlpipe.errors import ConfigError

OPTIMIZERS = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam}


def check_optimizer_name(name: str) -> None:
    if name not in OPTIMIZERS:
        raise ConfigError(f"unknown optim '{name}': choose one of {', '.join(sorted(OPTIMIZERS))}")


def build_optimizer(params: Iterable, name: str, **settings) -> torch.optim.Optimizer:
    """`name` from OPTIMIZERS, with the rest of an optim group's settings as its arguments."""
    check_optimizer_name(name)
    try:
        return OPTIMIZERS[name](params, **settings)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"optim '{name}' refuses its settings: {exc}") from exc
