"""Where the runs are: the tracking URI and experiment, known without MLflow or Hydra.

`dlpipe runs` must start in well under a second; composing the config with Hydra takes
about as long as that, and importing MLflow several times as long. The tracking settings
are therefore read from the `tracking` group's YAML file, which is all they depend on.
"""

import os
import urllib.parse
from pathlib import Path

import yaml

from dlpipe.errors import ConfigError, TrackingError

# The settings a tracking override may change on the command line.
_SETTINGS = ("uri", "experiment")


def resolve_uri(setting: str | None) -> str:
    """tracking.uri if set, else MLFLOW_TRACKING_URI, else mlflow.db at the project root."""
    uri = setting or os.environ.get("MLFLOW_TRACKING_URI")
    return uri or f"sqlite:///{project_root(Path.cwd()) / 'mlflow.db'}"


def sqlite_file(uri: str) -> Path:
    """The file of a `sqlite:///<path>` store.

    Raises:
        TrackingError: the URI names no file (a store in memory keeps no run past the
            process) or names a folder: errors no retry can mend, said at once.
    """
    path = uri.removeprefix("sqlite:///")
    if not uri.startswith("sqlite:///") or path in ("", ":memory:"):
        raise TrackingError(
            f"tracking store {uri} names no file, and a store in memory keeps no run: set "
            "tracking.uri or MLFLOW_TRACKING_URI to sqlite:///path/mlflow.db"
        )
    if Path(path).is_dir():
        raise TrackingError(
            f"tracking store {uri} names a folder, not a file: name the store's file, e.g. "
            f"sqlite:///{Path(path) / 'mlflow.db'}"
        )
    return Path(path)


def server_address(uri: str) -> tuple[str, str]:
    """`http(s)://[login@]host[:port][/path]` as the address without its login, and the login.

    Raises:
        TrackingError: the URI is no URL (a bracket unclosed, a port out of range).
    """
    try:
        parts = urllib.parse.urlsplit(uri.rstrip("/"))
        parts.port  # noqa: B018 - read to check it
    except ValueError as exc:
        from dlpipe.store import masked

        raise TrackingError(
            f"tracking.uri {masked(uri)} is no URL ({exc}): set it to http(s)://host:port"
        ) from None
    login, _, host = parts.netloc.rpartition("@")
    return parts._replace(netloc=host).geturl(), login


def project_root(cwd: Path) -> Path:
    """The working directory, except in a queued DVC experiment: that runs in a throw-away
    copy under <project>/.dvc/tmp/exps/, and its runs belong in the project's store."""
    parts = cwd.resolve().parts
    for start in range(len(parts) - 2):
        if parts[start : start + 3] == (".dvc", "tmp", "exps"):
            return Path(*parts[:start])
    return cwd.resolve()


def tracking_settings(conf_dir: Path, overrides: list[str]) -> tuple[str, str]:
    """The store's URI and the experiment's name, as a training with these overrides uses.

    Args:
        conf_dir: the project's conf/ folder.
        overrides: `tracking=<option>`, `tracking.uri=...`, `tracking.experiment=...`.

    Raises:
        ConfigError: an override of another setting, or a tracking option with no file.
    """
    option, changes = _read_overrides(overrides)
    option = option or _default_option(conf_dir)
    path = conf_dir / "tracking" / f"{option}.yaml"
    if not path.is_file():
        choices = ", ".join(sorted(p.stem for p in path.parent.glob("*.yaml")))
        raise ConfigError(f"unknown tracking '{option}': choose one of {choices} (conf/tracking)")
    settings = {**(yaml.safe_load(path.read_text(encoding="utf-8")) or {}), **changes}
    if any("${" in str(value) for value in settings.values()):
        settings = _composed(conf_dir, overrides)  # interpolations need OmegaConf to resolve
    return resolve_uri(settings.get("uri")), str(settings.get("experiment"))


def _read_overrides(overrides: list[str]) -> tuple[str | None, dict]:
    option, changes = None, {}
    for override in overrides:
        key, sep, value = override.partition("=")
        name = key.removeprefix("tracking.")
        if sep and key == "tracking":
            option = value
        elif sep and key.startswith("tracking.") and name in _SETTINGS:
            parsed = yaml.safe_load(value) if value else None  # null, quotes: as Hydra reads them
            changes[name] = None if parsed is None else str(parsed)
        else:
            raise ConfigError(
                f"{override} is not a tracking setting: this command takes tracking=<option>, "
                "tracking.uri=<uri> and tracking.experiment=<name>"
            )
    return option, changes


def _default_option(conf_dir: Path) -> str:
    """The tracking option the defaults list of conf/config.yaml picks."""
    config = yaml.safe_load((conf_dir / "config.yaml").read_text(encoding="utf-8")) or {}
    for entry in config.get("defaults", []):
        if isinstance(entry, dict) and "tracking" in entry:
            return entry["tracking"]
    raise ConfigError("conf/config.yaml picks no tracking option in its defaults list")


def _composed(conf_dir: Path, overrides: list[str]) -> dict:
    from omegaconf import OmegaConf

    from dlpipe.app import compose_checked

    return OmegaConf.to_container(compose_checked(conf_dir, overrides).tracking, resolve=True)
