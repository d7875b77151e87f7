"""Optimisers and learning-rate schedules by name, from the flat settings of config groups.

Every schedule steps once per training step, so warm-up and one-cycle work at the
resolution they need and epoch-based ones (step, exponential, cosine) stay smooth.
"""

import math
from collections.abc import Iterable

import torch
from torch.optim import lr_scheduler

from dlpipe.config.schema import groups
from dlpipe.errors import ConfigError

OPTIMIZERS = {
    "sgd": torch.optim.SGD,
    "rmsprop": torch.optim.RMSprop,
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
}
SCHEDULES = tuple(groups.SCHEDULES)


def check_optimizer_name(name: str) -> None:
    if name not in OPTIMIZERS:
        raise ConfigError(f"unknown optim '{name}': choose one of {', '.join(sorted(OPTIMIZERS))}")


def check_schedule_name(name: str) -> None:
    if name not in SCHEDULES:
        raise ConfigError(f"unknown schedule '{name}': choose one of {', '.join(SCHEDULES)}")


def build_optimizer(params: Iterable, name: str, **settings) -> torch.optim.Optimizer:
    """`name` from OPTIMIZERS, with the rest of an optim group's settings as its arguments."""
    check_optimizer_name(name)
    try:
        return OPTIMIZERS[name](params, **settings)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"optim '{name}' refuses its settings: {exc}") from exc


def build_schedule(
    optimizer: torch.optim.Optimizer,
    steps_per_epoch: int,
    max_epochs: int,
    name: str = "none",
    warmup_epochs: float = 0,
    **settings,
) -> lr_scheduler.LRScheduler | None:
    """The learning-rate schedule of a schedule group, stepped once per training step.

    Settings in epochs (`step_epochs`, `warmup_epochs`) are turned into steps here.
    With `warmup_epochs`, the rate first rises linearly from a tenth of its value.
    """
    check_schedule_name(name)
    total = steps_per_epoch * max_epochs
    warmup = round(warmup_epochs * steps_per_epoch)
    if name == "onecycle" and warmup:
        raise ConfigError("schedule 'onecycle' warms up by itself: set schedule.warmup_epochs=0")
    if warmup >= total:
        raise ConfigError(
            f"schedule.warmup_epochs={warmup_epochs} leaves no training after the warm-up "
            f"of trainer.max_epochs={max_epochs}: lower it"
        )
    try:
        main = _main_schedule(optimizer, name, steps_per_epoch, total - warmup, settings)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"schedule '{name}' refuses its settings {settings}: {exc}") from exc
    if not warmup:
        return main
    rise = lr_scheduler.LinearLR(optimizer, start_factor=0.1, total_iters=warmup)
    after = main or lr_scheduler.ConstantLR(optimizer, factor=1.0, total_iters=0)
    return lr_scheduler.SequentialLR(optimizer, [rise, after], milestones=[warmup])


def _main_schedule(
    optimizer: torch.optim.Optimizer, name: str, steps_per_epoch: int, steps: int, settings: dict
) -> lr_scheduler.LRScheduler | None:
    if name == "none":
        if settings:
            raise TypeError(f"schedule 'none' takes no settings, got {sorted(settings)}")
        return None
    if name == "step":  # multiply by gamma every step_epochs epochs
        step_epochs, gamma = settings.pop("step_epochs"), settings.pop("gamma")
        _no_more(settings)
        return lr_scheduler.StepLR(optimizer, round(step_epochs * steps_per_epoch), gamma)
    if name == "exponential":  # multiply by gamma every epoch, a little at each step
        gamma = settings.pop("gamma")
        _no_more(settings)
        return lr_scheduler.ExponentialLR(optimizer, math.pow(gamma, 1 / steps_per_epoch))
    if name == "cosine":
        return lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps, **settings)
    max_lr = [group["lr"] for group in optimizer.param_groups]
    return lr_scheduler.OneCycleLR(optimizer, max_lr=max_lr, total_steps=steps, **settings)


def _no_more(settings: dict) -> None:
    if settings:
        raise TypeError(f"unexpected settings {sorted(settings)}")
