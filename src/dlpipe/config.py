"""Checks on a composed config, run before any work so that a bad value costs seconds, not a run.

Each check raises ConfigError with the full key path, the bad value and what is allowed.
"""

import hashlib
import json
import re
from collections.abc import Callable
from typing import Any

from omegaconf import DictConfig, OmegaConf

from dlpipe.errors import ConfigError

# Checkpointing and early stopping act when validation ends, before the epoch's train
# metrics exist, so they can only watch validation metrics: those each task logs.
MONITORS = {
    "classification": ("val/loss", "val/acc"),
    "regression": ("val/loss", "val/mae"),
    "forecasting": ("val/loss", "val/mae"),
    "reconstruction": ("val/loss",),
    # The generator's loss; a GAN keeps its last epoch rather than the best of this.
    "generation": ("val/loss", "val/d_acc"),
}
ALL_MONITORS = tuple(dict.fromkeys(m for monitors in MONITORS.values() for m in monitors))
# Multi-task data also logs each head's loss and metric: val/<head>/loss, val/digit/acc.
HEAD_MONITOR = re.compile(r"^val/[^/]+/(loss|acc|mae)$")
HEAD_METRICS = {"classification": ("loss", "acc"), "regression": ("loss", "mae")}


def monitors(task: str, heads: list[dict] | None = None) -> tuple[str, ...]:
    """The validation metrics a training of `task` logs (with multi-task data's `heads`)."""
    if task != "multitask":
        return MONITORS[task]
    per_head = (f"val/{h['name']}/{m}" for h in heads for m in HEAD_METRICS[h["task"]])
    return ("val/loss", *per_head)


def to_dict(cfg: DictConfig) -> dict:
    return OmegaConf.to_container(cfg, resolve=True)


def flatten(tree: dict, prefix: str = "") -> dict[str, Any]:
    """{"optim": {"lr": 0.1}} -> {"optim.lr": 0.1}; lists stay values."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{path}."))
        else:
            flat[path] = value
    return flat


def config_hash(cfg: DictConfig) -> str:
    canonical = json.dumps(to_dict(cfg), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _require(cfg: DictConfig, key: str) -> Any:
    value = OmegaConf.select(cfg, key, default=None)
    if value is None:
        raise ConfigError(f"{key} is missing: set it in conf/ or on the command line ({key}=...)")
    return value


def _number(cfg: DictConfig, key: str, allowed: str, ok: Callable[[Any], bool]) -> None:
    value = _require(cfg, key)
    if isinstance(value, bool) or not isinstance(value, int | float) or not ok(value):
        raise ConfigError(f"{key} must be {allowed}, got {value!r}")


def _positive_int(cfg: DictConfig, key: str) -> None:
    _number(cfg, key, "a positive integer", lambda v: isinstance(v, int) and v > 0)


def _choice(cfg: DictConfig, key: str, allowed: tuple[str, ...]) -> None:
    value = _require(cfg, key)
    if value not in allowed:
        raise ConfigError(f"{key} must be one of {', '.join(allowed)}, got {value!r}")


def validate_data(cfg: DictConfig) -> None:
    """Checks for the prepare stage."""
    from dlpipe.data.sources import check_source_name, source_settings

    check_source_name(_require(cfg, "data.name"))
    source_settings(to_dict(cfg.data))
    if not isinstance(_require(cfg, "data.normalise"), bool):
        raise ConfigError(f"data.normalise must be true or false, got {cfg.data.normalise!r}")
    for key in ("data.split.val", "data.split.test"):
        _number(cfg, key, "a fraction in (0, 1)", lambda v: 0 < v < 1)
    if cfg.data.split.val + cfg.data.split.test >= 1:
        raise ConfigError("data.split.val + data.split.test must be below 1 to leave training data")


def validate_training(cfg: DictConfig) -> None:
    """Checks for the train stage: data, model, optimiser and trainer settings."""
    from dlpipe.models import check_model_name
    from dlpipe.optim import check_optimizer_name, check_schedule_name

    validate_data(cfg)
    check_model_name(_require(cfg, "model.name"))
    check_optimizer_name(_require(cfg, "optim.name"))
    _number(cfg, "optim.lr", "a positive number", lambda v: v > 0)
    check_schedule_name(_require(cfg, "schedule.name"))
    _number(cfg, "schedule.warmup_epochs", "a number of epochs >= 0", lambda v: v >= 0)
    if OmegaConf.select(cfg, "trainer.gradient_clip_val", default=None) is not None:
        _number(cfg, "trainer.gradient_clip_val", "a positive number or null", lambda v: v > 0)
    _choice(cfg, "trainer.gradient_clip_algorithm", ("norm", "value"))
    _number(cfg, "seed", "a non-negative integer", lambda v: isinstance(v, int) and v >= 0)
    _positive_int(cfg, "data.batch_size")
    _positive_int(cfg, "trainer.max_epochs")
    _number(
        cfg,
        "trainer.early_stopping.patience",
        "a non-negative integer",
        lambda v: isinstance(v, int) and v >= 0,
    )
    for key in ("trainer.checkpoint_monitor", "trainer.early_stopping.monitor"):
        if not HEAD_MONITOR.match(str(_require(cfg, key))):
            _choice(cfg, key, ALL_MONITORS)
    for key in ("trainer.checkpoint_mode", "trainer.early_stopping.mode"):
        _choice(cfg, key, ("min", "max"))
    freeze = OmegaConf.select(cfg, "transfer.freeze", default="none")
    if freeze not in ("none", "body") and not (
        isinstance(freeze, int) and not isinstance(freeze, bool) and freeze >= 0
    ):
        raise ConfigError(
            f"transfer.freeze must be none, body or a number of layers, got {freeze!r}"
        )
    if OmegaConf.select(cfg, "model.dropout", default=None) is not None:
        _number(cfg, "model.dropout", "in [0, 1)", lambda v: 0 <= v < 1)


def check_prepared_matches(cfg: DictConfig, meta: dict) -> None:
    """The prepared data must be what the config describes, or the logged params would lie."""
    wanted = {key: value for key, value in to_dict(cfg.data).items() if key != "batch_size"}
    for key in sorted(set(wanted) | set(meta["data"])):
        if wanted.get(key) != meta["data"].get(key):
            raise ConfigError(
                f"data.{key} is {wanted.get(key)} but data/prepared was made with "
                f"{meta['data'].get(key)}: run the prepare stage with this config first "
                "(`dvc repro` or `python pipelines/prepare.py` with the same overrides)"
            )


def check_monitors(cfg: DictConfig, task: str, heads: list[dict] | None = None) -> None:
    """Checkpointing and early stopping must watch a metric the data's task logs."""
    allowed = monitors(task, heads)
    for key in ("trainer.checkpoint_monitor", "trainer.early_stopping.monitor"):
        value = OmegaConf.select(cfg, key)
        if value not in allowed:
            raise ConfigError(
                f"{key}={value} is not logged for {task} data: use one of "
                f"{', '.join(allowed)}, e.g. {key}=val/loss {key.replace('monitor', 'mode')}=min"
            )


def head_weights(cfg: DictConfig, heads: list[dict] | None) -> dict[str, float]:
    """Each head's weight in a multi-task loss: multitask.weights, 1 for a head not listed."""
    given = to_dict(cfg.multitask.weights) if OmegaConf.select(cfg, "multitask.weights") else {}
    if not heads:
        if given:
            raise ConfigError(
                f"multitask.weights={given} needs data with several targets "
                f"(e.g. data=located_digits); data '{cfg.data.name}' has one: remove them"
            )
        return {}
    names = [head["name"] for head in heads]
    for name, weight in given.items():
        if name not in names:
            raise ConfigError(
                f"multitask.weights.{name}: data '{cfg.data.name}' has no target '{name}': "
                f"weigh {', '.join(names)}"
            )
        if isinstance(weight, bool) or not isinstance(weight, int | float) or weight < 0:
            raise ConfigError(f"multitask.weights.{name} must be a number >= 0, got {weight!r}")
    weights = {name: float(given.get(name, 1.0)) for name in names}
    if not any(weights.values()):
        raise ConfigError(f"multitask.weights are all 0: give some of {', '.join(names)} weight")
    return weights
