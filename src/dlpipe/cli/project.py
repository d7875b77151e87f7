"""The project a `dlpipe` command runs in: its conf/ folder, its config, its store.

Every command runs from the project's folder and finds the store as a training does
(tracking.uri, else MLFLOW_TRACKING_URI, else mlflow.db at the project root). Commands
that only read runs take the tracking settings from the `tracking` group's YAML file,
without Hydra or MLflow: composing the config takes about as long as `dlpipe runs` may
take to start, and importing MLflow several times as long.
"""

from pathlib import Path

from dlpipe.errors import ConfigError

# The settings a tracking override may change on the command line.
_TRACKING_SETTINGS = ("uri", "experiment")


def conf_dir() -> Path:
    """The project's conf/ folder (in the working directory), or a ConfigError."""
    found = Path.cwd() / "conf"
    if not (found / "config.yaml").is_file():
        raise ConfigError(
            f"no conf/config.yaml in {Path.cwd()}: run dlpipe from the project's folder"
        )
    return found


def compose(overrides: list[str]):
    """The project's config with `overrides`, checked against its schema."""
    from dlpipe.config.compose import compose_checked

    return compose_checked(conf_dir(), overrides)


def client_and_config(overrides: list[str]):
    """The project's config with `overrides`, and a client of its tracking store."""
    cfg = compose(overrides)
    from dlpipe.tracking.client import get_client  # MLflow: once the config holds
    from dlpipe.tracking.store.location import resolve_uri

    return get_client(resolve_uri(cfg.tracking.uri)), cfg


def tracking_settings(conf: Path, overrides: list[str]) -> tuple[str, str]:
    """The store's URI and the experiment's name, as a training with these overrides uses.

    Args:
        conf: the project's conf/ folder.
        overrides: `tracking=<option>`, `tracking.uri=...`, `tracking.experiment=...`.

    Raises:
        ConfigError: an override of another setting, or a tracking option with no file.
    """
    from dlpipe.tracking.store.location import resolve_uri  # not at start: `dlpipe --help`

    option, changes = _read_overrides(overrides)
    option = option or _default_option(conf)
    path = conf / "tracking" / f"{option}.yaml"
    if not path.is_file():
        choices = ", ".join(sorted(p.stem for p in path.parent.glob("*.yaml")))
        raise ConfigError(f"unknown tracking '{option}': choose one of {choices} (conf/tracking)")
    settings = {**(_yaml(path.read_text(encoding="utf-8")) or {}), **changes}
    if any("${" in str(value) for value in settings.values()):
        settings = _composed(conf, overrides)  # interpolations need OmegaConf to resolve
    return resolve_uri(settings.get("uri")), str(settings.get("experiment"))


def _read_overrides(overrides: list[str]) -> tuple[str | None, dict]:
    option, changes = None, {}
    for override in overrides:
        key, sep, value = override.partition("=")
        name = key.removeprefix("tracking.")
        if sep and key == "tracking":
            option = value
        elif sep and key.startswith("tracking.") and name in _TRACKING_SETTINGS:
            parsed = _yaml(value) if value else None  # null, quotes: as Hydra reads them
            changes[name] = None if parsed is None else str(parsed)
        else:
            raise ConfigError(
                f"{override} is not a tracking setting: this command takes tracking=<option>, "
                "tracking.uri=<uri> and tracking.experiment=<name>"
            )
    return option, changes


def _default_option(conf: Path) -> str:
    """The tracking option the defaults list of conf/config.yaml picks."""
    config = _yaml((conf / "config.yaml").read_text(encoding="utf-8")) or {}
    for entry in config.get("defaults", []):
        if isinstance(entry, dict) and "tracking" in entry:
            return entry["tracking"]
    raise ConfigError("conf/config.yaml picks no tracking option in its defaults list")


def _composed(conf: Path, overrides: list[str]) -> dict:
    from omegaconf import OmegaConf

    from dlpipe.config.compose import compose_checked

    return OmegaConf.to_container(compose_checked(conf, overrides).tracking, resolve=True)


def _yaml(text: str):
    """`text` read as YAML; the parser loads here, not when `dlpipe --help` starts."""
    import yaml

    return yaml.safe_load(text)
