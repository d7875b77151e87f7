"""Which of two models is better: the metric versions are compared on and which way it is
better (the task's descriptor says so for its own champion metric; for another, its name);
and the registered model a training is a version of.

Kept free of torch and MLflow: the config schema checks `registry.metric` with it before a
stage loads either, and the train stage names its model with it.
"""

import os
import re
from pathlib import Path
from typing import NamedTuple

from dlpipe.errors import ConfigError
from dlpipe.tasks.kinds import Mode, TaskKind

# registry.name: the model is named after the data it was trained on.
AUTO = "auto"
# What a registered model's name may hold (it ends up in `models:/<name>@<alias>` URIs).
NAME = re.compile(r"^[\w.-]+$")

# Read from the metric's last name part, word by word: test/f1_macro is an f1, test/digit/acc
# an acc, test/baseline_rmse an rmse.
LOWER_IS_BETTER = ("loss", "mse", "rmse", "mae")
HIGHER_IS_BETTER = ("acc", "f1", "auroc", "r2", "skill")
ALLOWED = (
    f"a test metric whose name says which way is better ({', '.join(LOWER_IS_BETTER)}: lower; "
    f"{', '.join(HIGHER_IS_BETTER)}: higher), e.g. test/acc, or null for the task's own"
)


def _kind(metric: str) -> str | None:
    words = metric.rsplit("/", 1)[-1].split("_")
    return next((word for word in words if word in LOWER_IS_BETTER + HIGHER_IS_BETTER), None)


def is_known(metric: str) -> bool:
    """Whether the direction of `metric` can be told from its name."""
    return _kind(metric) is not None


def higher_is_better(metric: str) -> bool:
    """True for accuracy-like metrics, False for losses and errors.

    Raises:
        ConfigError: the name says neither.
    """
    kind = _kind(metric)
    if kind is None:
        raise ConfigError(f"registry.metric must be {ALLOWED}, got {metric!r}")
    return kind in HIGHER_IS_BETTER


class Criterion(NamedTuple):
    """A test metric versions are compared on, and which way it is better."""

    metric: str
    mode: Mode

    def beats(self, new: float, old: float) -> bool:
        """Whether `new` is strictly better than `old`: a tie keeps the champion."""
        return new > old if self.mode == "max" else new < old

    @property
    def way(self) -> str:
        return "higher" if self.mode == "max" else "lower"


def by_name(metric: str) -> Criterion:
    """`metric`, which way is better told by its name (see `higher_is_better`)."""
    return Criterion(metric, "max" if higher_is_better(metric) else "min")


def judged(
    task: TaskKind, heads: list[dict] | None = None, metric: str | None = None
) -> Criterion | None:
    """What a model of `task` is compared on: registry.metric (`metric`), or the task's own
    champion metric when it is null; which way is better from the task where it says (its
    champion), else from the metric's name. None: the task names no champion.

    Raises:
        ConfigError: neither the task nor the metric's name says which way is better.
    """
    metric = metric or task.champion_metric(heads)
    if metric is None:
        return None
    mode = task.better(metric, heads)
    return by_name(metric) if mode is None else Criterion(metric, mode)


def registered_name(name: str | None, data: dict) -> str | None:
    """The registered model a training on `data` is a version of, for registry.name `name`.

    With `auto`, models of different data sets never share a name, and so never a
    champion: data read from the user's path is named after that file's stem (a folder's
    own name), a built-in data set after itself. None: logged, not registered.
    """
    if name != AUTO:
        return name
    path = data.get("path")
    if not path:
        return data["name"]
    where = Path(os.path.abspath(os.path.expanduser(str(path))))
    stem = where.name if where.is_dir() else where.stem
    # Characters a model name cannot hold (spaces, brackets) become `_`.
    return re.sub(r"[^\w.-]+", "_", stem).strip("_") or data["name"]
