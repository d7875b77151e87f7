"""Masking what looks secret before it is recorded: MLflow tags, params and artifacts are
shared with everyone who can read the tracking store, and logs, terminals and Hydra's
`outputs/` with whoever reads those.

Masked: a password in a URL (`https://user:pw@host`, `https://:pw@host`, an unencoded `@`
in it too); wherever it appears, the value of an environment variable whose name looks
secret (as when a config reads `${oc.env:AWS_SECRET_ACCESS_KEY}`) and the value a
secret-looking key takes on the command line (`+db.password=...`); and the value of any
config key whose name looks secret (password, token, secret, key), should a config group
take one.
"""

import functools
import logging
import os
import re
import sys
from pathlib import Path
from typing import Any

import yaml
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig

from dlpipe import files

MASK = "***"
_SECRET_WORDS = ("password", "passwd", "token", "secret", "key")
# `scheme://user:password@host`: the user may be empty, and the password holds anything up
# to the last `@` before the host (the login ends there, as for urllib and requests). Also
# as Hydra escapes a sweep's override (`http\://\:pw@host`, a space as `\ `), and as a list
# of those prints it (backslashes doubled).
_URL_PASSWORD = re.compile(
    r"(?P<head>[a-z][a-z0-9+.-]*\\*://[^:/@\s]*:)(?:\\\s|[^\s/?#])*@", re.IGNORECASE
)
# Shorter values (a 1, a "no") would mask unrelated text wherever they occur.
_SHORTEST_MASKED_VALUE = 4


@functools.cache  # asked of every environment variable at each write to the terminal
def looks_secret(name: str) -> bool:
    """`tracking.api_key`, `DB_PASSWORD`, `authToken`: a word of the name is a secret word."""
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", str(name))  # authToken -> auth Token
    words = re.split(r"[^a-z0-9]+", spaced.lower())
    return any(word.endswith(_SECRET_WORDS) for word in words if word)


def secret_values() -> list[str]:
    """What is masked wherever it appears, longest first: the values of environment
    variables whose names look secret, and those that secret-looking keys take on this
    process's command line (a message, Hydra's among them, may quote the command line)."""
    values = {value for name, value in os.environ.items() if looks_secret(name)}
    values |= {_override_value(arg) for arg in sys.argv[1:] if _is_secret_override(arg)}
    return sorted(
        (value for value in values if len(value) >= _SHORTEST_MASKED_VALUE), key=len, reverse=True
    )


def _is_secret_override(override: str) -> bool:
    key, sep, _ = override.partition("=")
    return bool(sep) and looks_secret(key.lstrip("+~"))


def _override_value(override: str) -> str:
    """`key=value` -> value, without the quotes Hydra takes off it."""
    return override.partition("=")[2].strip("'\"")


def mask_text(text: str, hidden: list[str] | None = None) -> str:
    """`text` with URL passwords and `secret_values()` replaced by MASK."""
    masked = _URL_PASSWORD.sub(rf"\g<head>{MASK}@", text)
    for value in secret_values() if hidden is None else hidden:
        masked = masked.replace(value, MASK)
    return masked


def mask(tree: Any, hidden: list[str] | None = None) -> Any:
    """A copy of a config tree (dicts, lists, values) with what looks secret masked."""
    hidden = secret_values() if hidden is None else hidden
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
    if _is_secret_override(override):
        return f"{override.partition('=')[0]}={MASK}"
    return mask_text(override)


class MaskHydraRecord(Callback):
    """Mask secrets in the config Hydra keeps in each job's `.hydra/` folder and a sweep's
    `multirun.yaml` (as given on the command line, `tracking.uri=https://user:pw@host` would
    stay there), and in all the stage logs and prints (see `mask_output`)."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        mask_output()

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        mask_output()

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        mask_output()  # again: a sweep's job may run in a process of its own
        if config.hydra.get("mode") == RunMode.MULTIRUN:
            # Written as the sweep starts: masked by its first job, not only at its end,
            # which a killed sweep never reaches.
            _mask_yaml_file(Path(config.hydra.sweep.dir) / "multirun.yaml")
        if config.hydra.output_subdir is None:
            return
        record = Path(config.hydra.runtime.output_dir) / config.hydra.output_subdir
        for name in ("config.yaml", "hydra.yaml", "overrides.yaml"):
            _mask_yaml_file(record / name)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        _mask_yaml_file(Path(config.hydra.sweep.dir) / "multirun.yaml")


def mask_output() -> None:
    """Mask secrets in all that this process logs or prints, whoever does: Hydra's launcher
    lists each job's overrides and prints those of a failed job, its Optuna sweeper names
    the study's storage URL, a traceback may quote a URI."""
    _mask_log_records()
    for name in ("stdout", "stderr"):
        if not getattr(getattr(sys, name), "masks_secrets", False):
            setattr(sys, name, _MaskedStream(getattr(sys, name)))


class _MaskedStream:
    """A text stream that masks secrets in what is written to it, the stream otherwise."""

    masks_secrets = True

    def __init__(self, stream: Any):
        self._stream = stream

    def write(self, text: str) -> int:
        self._stream.write(mask_text(text))
        return len(text)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def _mask_log_records() -> None:
    """Mask each log record as it is made: log handlers write to the streams they were
    given (the terminal, a job's log file), and Hydra replaces them, and any filter on
    them, for each job."""
    make = logging.getLogRecordFactory()
    if getattr(make, "masks_secrets", False):
        return

    def masked_record(*args: Any, **kwargs: Any) -> logging.LogRecord:
        return _masked(make(*args, **kwargs))

    masked_record.masks_secrets = True
    logging.setLogRecordFactory(masked_record)


def _masked(record: logging.LogRecord) -> logging.LogRecord:
    """`record` with its message, and its traceback if any, masked."""
    try:
        message = record.getMessage()
    except (TypeError, ValueError):
        return record  # arguments that do not fit the message: logging reports that itself
    masked = mask_text(message)
    if masked != message:
        record.msg, record.args = masked, ()
    if record.exc_info:
        record.exc_text = mask_text(logging.Formatter().formatException(record.exc_info))
    return record


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
                # Whole first: a password may hold a comma.
                ",".join(mask_override(pair) for pair in mask_text(value).split(","))
                if key == "override_dirname" and isinstance(value, str)
                else _mask_overrides(value)
            )
            for key, value in tree.items()
        }
    return tree
