"""The settings of a data set (conf/data/*.yaml): those every data set has, and its
source's own.

A data config names its source, a function returning the samples, by `_target_:
package.module.function` (dlpipe's, e.g. dlpipe.data.synthetic.linear, or a user's), and
holds the settings every data set has (`Data`: its name, split, batch size, ...) beside
the source's own, which the source's signature declares (see dlpipe.config.schema.targets).
"""

import dataclasses
from dataclasses import dataclass
from typing import Any

from dlpipe.config.schema import targets
from dlpipe.config.schema.check import check_group, setting
from dlpipe.errors import ConfigError


@dataclass(kw_only=True)
class Split:
    val: float = setting(gt=0, lt=1)
    test: float = setting(gt=0, lt=1)
    seed: int = setting(ge=0)

    def __post_init__(self) -> None:
        if self.val + self.test >= 1:
            raise ConfigError(
                "data.split.val + data.split.test must be below 1 to leave training data"
            )


@dataclass(kw_only=True)
class Data:
    """What every data set has: read by the prepare stage and the loaders, not the source.

    `name` names the data set in runs, lineage and the model registry (registry.name
    auto), unless the source reads a user's file (`path`): then that file's stem does.
    """

    name: str
    split: Split
    batch_size: int = setting(gt=0)
    normalise: bool
    # Classification only, which the prepare stage checks once it has the data.
    train_per_class: int | None = setting(gt=0, default=None)
    # Filled in by check_data, never read from the config: the source and its settings.
    source: str = setting(default="")
    settings: dict[str, Any] = setting(default=None)


# The keys of a data config that are not its source's settings.
COMMON = ("_target_", "name", "split", "batch_size", "normalise", "train_per_class")


def target_of(data: dict, path: str = "data") -> str:
    target = data.get("_target_")
    if not isinstance(target, str) or not target:
        raise ConfigError(
            f"{path}._target_ is missing: choose a data set with data=<name> or name your own "
            f"source in its YAML with _target_: package.module.function"
        )
    return target


def label(data: dict) -> str:
    """How messages name the data set."""
    return f"data '{data.get('name') or target_of(data)}'"


def source_settings(data: dict, path: str = "data") -> dict:
    """The settings `data` passes its source, checked against the source's signature:
    none unknown, none required left out, each of its type and in range."""
    found = _signature(data, path)
    return targets.check_settings(_own(data), found, path, label(data))


def check_data(values: Any, path: str = "data") -> Data:
    """A data config checked before any data library loads (the source's module is read,
    not imported): no unknown key, then the settings every data set has, then the
    source's own."""
    if not isinstance(values, dict):
        raise ConfigError(f"{path} must be a group of settings with _target_, got {values!r}")
    found = _signature(values, path)
    common = {key: value for key, value in values.items() if key in COMMON[1:]}
    checked = check_group(common, Data, path, label(values))
    own = targets.check_settings(_own(values), found, path, label(values))
    return dataclasses.replace(checked, source=target_of(values, path), settings=own)


def _own(data: dict) -> dict:
    return {key: value for key, value in data.items() if key not in COMMON}


def _signature(data: dict, path: str) -> targets.Signature:
    """The source's settings; a key that is neither one of them nor common is refused,
    with every key the data set takes."""
    found = targets.signature(target_of(data, path))
    for key in _own(data):
        if key not in found.settings and not found.open:
            takes = ", ".join([*COMMON[1:], *found.settings])
            raise ConfigError(f"{path}.{key} is not a setting of {label(data)}: it takes {takes}")
    return found
