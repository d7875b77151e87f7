"""The composed config: its flat and hashed forms, and the checks that need the data.

The config's own values are checked by its schema (dlpipe.config.schema) before a stage starts;
what is checked here depends on the prepared data: its settings, its task and its targets.
"""

import copy
import hashlib
import json
from typing import Any

from omegaconf import DictConfig, OmegaConf

from dlpipe.errors import ConfigError
from dlpipe.tasks.kinds import TaskKind, kind


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


def prepared_settings(data: DictConfig) -> dict:
    """The data settings that make the prepared data: not the batch size, nor how shards
    are read (data.stream), nor the fold a training validates on (data.split.fold), which
    the loaders apply."""
    settings = {
        key: value for key, value in to_dict(data).items() if key not in ("batch_size", "stream")
    }
    split = {key: value for key, value in settings["split"].items() if key != "fold"}
    return {**settings, "split": split}


def check_prepared_matches(cfg: DictConfig, meta: dict) -> None:
    """The prepared data must be what the config describes, or the logged params would lie."""
    wanted = prepared_settings(cfg.data)
    for key in sorted(set(wanted) | set(meta["data"])):
        if wanted.get(key) != meta["data"].get(key):
            raise ConfigError(
                f"data.{key} is {wanted.get(key)} but data/prepared was made with "
                f"{meta['data'].get(key)}: run the prepare stage with this config first "
                "(`dvc repro` or `python pipelines/prepare.py` with the same overrides)"
            )


def check_batch_size(cfg: DictConfig, meta: dict) -> None:
    """A batch larger than the training split cannot be filled: every epoch would be one
    full-batch step, which trains next to nothing (a tenth of the digits right) in silence."""
    batch, samples = cfg.data.batch_size, meta["sizes"]["train"]
    if batch > samples:
        raise ConfigError(
            f"data.batch_size={batch} exceeds the training split's {samples} samples: each "
            f"epoch would be one step on all of them; set data.batch_size to at most {samples}"
        )


# What checkpointing and early stopping watch, and which way each is better.
WATCHED = (
    ("trainer.checkpoint_monitor", "trainer.checkpoint_mode"),
    ("trainer.checkpoint_tiebreak", "trainer.checkpoint_tiebreak_mode"),
    ("trainer.early_stopping.monitor", "trainer.early_stopping.mode"),
)


def watched(cfg: DictConfig) -> tuple[tuple[str, str], ...]:
    """The (monitor, mode) keys of WATCHED that `cfg` uses: early stopping's only when it
    is on (trainer.early_stopping=null switches it off)."""
    stops = OmegaConf.select(cfg, "trainer.early_stopping") is not None
    return tuple(pair for pair in WATCHED if stops or "early_stopping" not in pair[0])


def check_monitors(
    cfg: DictConfig, task: "str | TaskKind", heads: list[dict] | None = None
) -> None:
    """Checkpointing and early stopping must watch a metric the task (a TaskKind, or the
    name of one of dlpipe's) logs; null watches the task's own."""
    found = kind(task)
    allowed = found.monitors(heads)
    for key, mode in watched(cfg):
        value = OmegaConf.select(cfg, key)
        if value is not None and value not in allowed:
            raise ConfigError(
                f"{key}={value} is not logged for {found.name} data: use one of "
                f"{', '.join(allowed)}, e.g. {key}={found.monitor} {mode}={found.mode}"
            )


def watching(
    cfg: DictConfig, task: "str | TaskKind", heads: list[dict] | None = None
) -> DictConfig:
    """A copy of `cfg` with the metrics checkpointing and early stopping watch, and their
    modes, filled in from the task where they are null: what the training, its run's
    params and record, Ray Train and an Optuna trial then all read.

    Raises:
        ConfigError: a monitor the task does not log, or one whose mode is null and
            which way it is better the task does not say.
    """
    check_monitors(cfg, task, heads)
    found = kind(task)
    filled = copy.deepcopy(cfg)
    for key, mode_key in watched(cfg):
        monitor, mode = OmegaConf.select(cfg, key), OmegaConf.select(cfg, mode_key)
        if monitor is None:
            own = found.tiebreak if key == "trainer.checkpoint_tiebreak" else found.monitor
            monitor, mode = own, None
        mode = mode or found.better(monitor, heads)
        if mode is None:
            raise ConfigError(
                f"{mode_key} is null and {found.name} does not say which way {monitor} is "
                f"better: set {mode_key}=max (higher is better) or min"
            )
        OmegaConf.update(filled, key, monitor)
        OmegaConf.update(filled, mode_key, mode)
    return filled


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
    for name in given:
        if name not in names:
            raise ConfigError(
                f"multitask.weights.{name}: data '{cfg.data.name}' has no target '{name}': "
                f"weigh {', '.join(names)}"
            )
    weights = {name: float(given.get(name, 1.0)) for name in names}
    if not any(weights.values()):
        raise ConfigError(f"multitask.weights are all 0: give some of {', '.join(names)} weight")
    return weights
