"""Masking what looks secret before it is logged: MLflow params and artifacts are shared
with everyone who can read the tracking store.

Masked: a password in a URL (`https://user:pw@host`); wherever it appears, the value of
an environment variable whose name looks secret (as when a config reads
`${oc.env:AWS_SECRET_ACCESS_KEY}`); and the value of any config key whose name looks secret
(password, token, secret, key), should a config group take one.
"""

import os
import re
from pathlib import Path
from typing import Any

import yaml
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from dlpipe import files

MASK = "***"
_SECRET_WORDS = ("password", "passwd", "token", "secret", "key")
_URL_PASSWORD = re.compile(r"(?P<head>[a-z][a-z0-9+.-]*://[^:/@\s]+:)[^@\s]+@", re.IGNORECASE)
# Shorter values (a 1, a "no") would mask unrelated text wherever they occur.
_SHORTEST_MASKED_VALUE = 4


def looks_secret(name: str) -> bool:
    """`tracking.api_key`, `DB_PASSWORD`, `authToken`: a word of the name is a secret word."""
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", str(name))  # authToken -> auth Token
    words = re.split(r"[^a-z0-9]+", spaced.lower())
    return any(word.endswith(_SECRET_WORDS) for word in words if word)


def secret_environment() -> list[str]:
    """Values of the environment variables whose names look secret, longest first."""
    values = {
        value
        for name, value in os.environ.items()
        if looks_secret(name) and len(value) >= _SHORTEST_MASKED_VALUE
    }
    return sorted(values, key=len, reverse=True)


def mask_text(text: str, hidden: list[str] | None = None) -> str:
    """`text` with URL passwords and secret environment values replaced by MASK."""
    masked = _URL_PASSWORD.sub(rf"\g<head>{MASK}@", text)
    for value in secret_environment() if hidden is None else hidden:
        masked = masked.replace(value, MASK)
    return masked


def mask(tree: Any, hidden: list[str] | None = None) -> Any:
    """A copy of a config tree (dicts, lists, values) with what looks secret masked."""
    hidden = secret_environment() if hidden is None else hidden
    if isinstance(tree, dict):
        return {
            key: MASK if looks_secret(key) and value is not None else mask(value, hidden)
            for key, value in tree.items()
        }
    if isinstance(tree, list):
        return [mask(item, hidden) for item in tree]
    if isinstance(tree, str):
        return mask_text(tree, hidden)
    return tree


def mask_override(override: str) -> str:
    """A command-line override, `key=value`, with its value masked when secret."""
    key, sep, _ = override.partition("=")
    if sep and looks_secret(key.lstrip("+~")):
        return f"{key}={MASK}"
    return mask_text(override)


class MaskHydraRecord(Callback):
    """Mask secrets in the config Hydra keeps in each job's `.hydra/` folder (and a sweep's
    `multirun.yaml`): as given on the command line, `tracking.uri=https://user:pw@host`
    would stay there."""

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        if config.hydra.output_subdir is None:
            return
        record = Path(config.hydra.runtime.output_dir) / config.hydra.output_subdir
        for name in ("config.yaml", "hydra.yaml", "overrides.yaml"):
            _mask_yaml_file(record / name)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        _mask_yaml_file(Path(config.hydra.sweep.dir) / "multirun.yaml")


def _mask_yaml_file(path: Path) -> None:
    if not path.is_file():
        return
    tree = _mask_overrides(mask(yaml.safe_load(path.read_text(encoding="utf-8"))))
    files.write_text(path, yaml.safe_dump(tree, sort_keys=False))


def _mask_overrides(tree: Any) -> Any:
    """Hydra's record of the command line: lists of `key=value` overrides, and the
    job's `override_dirname`, `key=value` pairs joined by commas."""
    if isinstance(tree, list) and all(isinstance(item, str) for item in tree):
        return [mask_override(item) for item in tree]
    if isinstance(tree, dict):
        return {
            key: (
                ",".join(mask_override(pair) for pair in value.split(","))
                if key == "override_dirname" and isinstance(value, str)
                else _mask_overrides(value)
            )
            for key, value in tree.items()
        }
    return tree
