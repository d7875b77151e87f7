"""The config's schema: every group's settings, their types and ranges, checked at once.

`validate(cfg)` runs before a stage imports torch, Lightning or MLflow, so a bad value
stops it with one line in about the time Hydra takes to compose the config.
"""

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from dlpipe.errors import ConfigError
from dlpipe.schema.check import check_group
from dlpipe.schema.groups import Config


def validate(cfg: DictConfig) -> Config:
    """The composed config as typed settings; a ConfigError names the first bad value.

    Unknown keys, values of the wrong kind, out of range or not among the choices, and
    settings left required (`???`) are refused with the key's full path and what it allows.
    """
    try:
        values = OmegaConf.to_container(cfg, resolve=True)
    except OmegaConfBaseException as exc:  # an interpolation that does not resolve
        raise ConfigError(f"{exc.full_key}: {str(exc).splitlines()[0]}") from exc
    return check_group(values, Config, path="", label="the config")
