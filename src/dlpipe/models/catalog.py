"""The models a project can choose with `model=<name>`: dlpipe's and its user's, alike.

Each model/<name>.yaml of the config folders (conf/ and those on Hydra's search path; a
name in several is listed once, from the first) is one choice. Its settings are
read from its builder's signature without importing it (see dlpipe.config.schema.targets), so
listing every model stays quick and needs no torch; a choice whose builder cannot be
read is listed with the reason.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import yaml

from dlpipe.config.schema import targets
from dlpipe.errors import ConfigError
from dlpipe.models import registry

# Defaults a listing can show as they are; any other was computed by the builder's code.
_PLAIN = (type(None), bool, int, float, str, list, tuple, dict)
_BOUNDS = (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<="))


@dataclass(frozen=True)
class Setting:
    """One setting of a model: its value is the YAML's, else the builder's default."""

    name: str
    type: str
    value: Any
    range: str = ""


@dataclass(frozen=True)
class Model:
    """One choice of the model group, from the YAML file that defines it."""

    name: str
    file: Path
    target: str | None
    settings: list[Setting] = field(default_factory=list)
    problem: str = ""


def list_models(folders: Sequence[Path]) -> list[Model]:
    """Every model/<name>.yaml of `folders` (config folders, in search-path order), by name."""
    found: dict[str, Path] = {}
    for folder in folders:
        for path in sorted((folder / "model").glob("*.yaml")):
            found.setdefault(path.stem, path)
    return [describe(name, path) for name, path in sorted(found.items())]


def describe(name: str, path: Path) -> Model:
    """The model that `path` defines, with its builder's settings."""
    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        return Model(name, path, None, problem=f"unreadable: {str(exc).splitlines()[0]}")
    if not isinstance(config, dict):
        return Model(name, path, None, problem="holds no settings")
    target = config.get("_target_")
    try:
        signature = registry.signature(config)
    except ConfigError as exc:
        return Model(name, path, target, problem=str(exc))
    given = registry.settings(config)
    rows = [_row(key, wanted, given) for key, wanted in signature.settings.items()]
    rows += [
        Setting(key, "any", value) for key, value in given.items() if key not in signature.settings
    ]
    init = Setting(
        "init", "str", config.get("init", "default"), f"one of {', '.join(registry.INITS)}"
    )
    return Model(name, path, target, [*rows, init])


def _row(key: str, wanted: targets.Setting, given: dict) -> Setting:
    if key in given:
        value = given[key]
    elif wanted.default is targets.REQUIRED:
        value = "(required)"
    elif isinstance(wanted.default, _PLAIN):
        value = list(wanted.default) if isinstance(wanted.default, tuple) else wanted.default
    else:
        value = "(set in code)"
    if get_origin(wanted.hint) is Literal:
        choices = get_args(wanted.hint)
        kinds = " | ".join(dict.fromkeys(type(choice).__name__ for choice in choices))
        return Setting(key, kinds, value, f"one of {', '.join(map(str, choices))}")
    return Setting(key, type_name(wanted.hint), value, range_text(wanted.range))


def type_name(hint: Any) -> str:
    """A config type as a user writes it: `int`, `list[int]`, `float | None`."""
    if isinstance(hint, type) and not getattr(hint, "__args__", None):
        return "None" if hint is type(None) else hint.__name__
    return str(hint).replace("typing.", "").replace("NoneType", "None")


def range_text(given: targets.Range) -> str:
    """A setting's Range in words: `> 0`, `>= 0, < 1`, `length 3`, `not empty`."""
    words = [
        f"{sign} {getattr(given, key)}" for key, sign in _BOUNDS if getattr(given, key) is not None
    ]
    if given.length is not None:
        words.append(f"length {given.length}")
    if given.nonempty:
        words.append("not empty")
    return ", ".join(words)
