"""The config's schema: every group's settings, their types and ranges, checked at once.

`validate(cfg)` runs before a stage imports torch, Lightning or MLflow, so a bad value
stops it with one line in about the time Hydra takes to compose the config.
"""

import re
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from dlpipe.config.schema.check import check_group
from dlpipe.config.schema.groups import Config
from dlpipe.errors import ConfigError

# `${key}`: another setting's value (`${resolver:...}`, e.g. oc.env, is not one).
_REFERENCE = re.compile(r"\$\{([^:${}]+)\}")


def validate(cfg: DictConfig) -> Config:
    """The composed config as typed settings; a ConfigError names the first bad value.

    Unknown keys, values of the wrong kind, out of range or not among the choices, numbers
    that are not finite or are another setting's value (`${seed}`), and settings left
    required (`???`) are refused with the key's full path and what it allows.
    """
    try:
        values = OmegaConf.to_container(cfg, resolve=True)
    except OmegaConfBaseException as exc:  # an interpolation that does not resolve
        raise ConfigError(f"{exc.full_key}: {str(exc).splitlines()[0]}") from exc
    _refuse_borrowed_numbers(OmegaConf.to_container(cfg, resolve=False), values, "")
    return check_group(values, Config, path="", label="the config")


def _refuse_borrowed_numbers(given: Any, values: Any, path: str) -> None:
    """A number must be written as itself: `optim.lr='${seed}'` would train at lr 42.

    A string may follow another setting (`registry.name: ${data.name}`); a number taken
    from one is far more likely a slip than a wish, and it changes silently with it.
    """
    if isinstance(given, str):
        found = _REFERENCE.search(given)
        if found and isinstance(values, int | float) and not isinstance(values, bool):
            raise ConfigError(
                f"{path}='{given}' takes the value of {found[1].strip()} ({values}): "
                f"give {path} a number of its own"
            )
    elif isinstance(given, dict) and isinstance(values, dict):
        for key in given:
            _refuse_borrowed_numbers(given[key], values[key], f"{path}.{key}" if path else key)
    elif isinstance(given, list) and isinstance(values, list):
        for index, (item, value) in enumerate(zip(given, values, strict=True)):
            _refuse_borrowed_numbers(item, value, f"{path}[{index}]")
