"""Declaring settings and checking values against them.

A config group is a dataclass, one field per setting. The field's type says what kind of
value the setting takes: bool, int, float (an int is a number too; NaN and inf are not),
str, Literal choices, list[...], dict[str, ...], a nested group, Any, and unions of these
(`| None`: null is allowed). `setting()` adds what a type cannot say: a range for the
numbers, a list's length (or that it holds something), the options of a group picked by
its `name`, or a rule of its own. A field with a default may be left out of the config
(the code that reads the setting has its own default); every other setting must be there.

Checking a group walks the config's values field by field and builds the dataclass, so
its `__post_init__` can check settings against each other. The first bad value raises a
ConfigError of one line: its full key path, the value, and what is allowed.
"""

import dataclasses
import math
import types
import typing
from collections.abc import Callable
from typing import Any, Literal

from dlpipe.errors import ConfigError

# OmegaConf's mark for a value the config leaves for the command line to set.
REQUIRED = "???"
NULL = type(None)
_UNIONS = (typing.Union, types.UnionType)


@dataclasses.dataclass(frozen=True)
class Bounds:
    """A range of numbers: each end open (gt, lt), closed (ge, le) or absent."""

    gt: float | None = None
    ge: float | None = None
    lt: float | None = None
    le: float | None = None

    def holds(self, number: float) -> bool:
        return not (
            (self.gt is not None and not number > self.gt)
            or (self.ge is not None and not number >= self.ge)
            or (self.lt is not None and not number < self.lt)
            or (self.le is not None and not number <= self.le)
        )

    def __str__(self) -> str:
        low, high = _first(self.gt, self.ge), _first(self.lt, self.le)
        if low is not None and high is not None:
            opening = "(" if self.gt is not None else "["
            closing = ")" if self.lt is not None else "]"
            return f"in {opening}{low:g}, {high:g}{closing}"
        if low is not None:
            return f"{'>' if self.gt is not None else '>='} {low:g}"
        if high is not None:
            return f"{'<' if self.lt is not None else '<='} {high:g}"
        return ""


def _first(*values: float | None) -> float | None:
    return next((value for value in values if value is not None), None)


def setting(
    *,
    gt: float | None = None,
    ge: float | None = None,
    lt: float | None = None,
    le: float | None = None,
    length: int | None = None,
    nonempty: bool = False,
    options: dict[str, type] | None = None,
    rule: Callable[[Any], bool] | None = None,
    allowed: str = "",
    part: Callable[[Any, str], Any] | None = None,
    default: Any = dataclasses.MISSING,
) -> Any:
    """A dataclass field with what its type cannot say.

    Args:
        gt, ge, lt, le: the range of the numbers in the value (list items, mapping values too).
        length: how many items a list holds.
        nonempty: a list must hold at least one item (e.g. one that sizes layers).
        options: a group's dataclass by the value of its `name` setting.
        rule: a test the value must pass beyond its type; `allowed` says what it allows.
        part: checks a group whose settings its `_target_` declares: part(values, path)
            returns them checked (e.g. dlpipe.models.registry.check_model).
        default: makes the setting optional (any value: the code reading it has its own).
    """
    meta = {
        "bounds": Bounds(gt, ge, lt, le),
        "length": length,
        "nonempty": nonempty,
        "options": options,
        "part": part,
    }
    return dataclasses.field(default=default, metadata={**meta, "rule": rule, "allowed": allowed})


# What a field declared without setting() has: its type alone.
_PLAIN = setting().metadata


def check_group(values: Any, group: type, path: str, label: str) -> Any:
    """`values` (a mapping from the config) as an instance of the dataclass `group`.

    Args:
        path: the group's key path ("" for the whole config).
        label: how messages name the group, e.g. "trainer" or "model 'cnn'".
    """
    fields = {field.name: field for field in dataclasses.fields(group)}
    if not isinstance(values, dict):
        raise ConfigError(
            f"{path} must be a group of settings ({', '.join(fields)}), got {values!r}"
        )
    for key in values:
        if key not in fields:
            raise ConfigError(
                f"{_join(path, key)} is not a setting of {label}: it takes {', '.join(fields)}"
            )
    hints = typing.get_type_hints(group)
    checked = {}
    for name, field in fields.items():
        key = _join(path, name)
        if name not in values:
            if field.default is dataclasses.MISSING:
                raise ConfigError(f"{key} is missing: set it in conf/ or on the command line")
            continue
        if values[name] == REQUIRED:
            raise ConfigError(f"{key} is required for {label}: set {key}=...")
        checked[name] = check_value(values[name], hints[name], field.metadata or _PLAIN, key)
    return group(**checked)


def check_value(value: Any, hint: Any, meta: dict, path: str) -> Any:
    """`value` checked against the type `hint` and the field's `meta`; groups become dataclasses."""
    if meta["options"]:
        return _check_option(value, meta["options"], path)
    if meta["part"]:
        return meta["part"](value, path)
    if dataclasses.is_dataclass(hint):
        return check_group(value, hint, path, path)
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in _UNIONS:
        for arg in args:
            if _fits(value, arg, meta) or _same_container(value, arg):
                return check_value(value, arg, meta, path)
    elif origin is list and isinstance(value, list):
        if meta["length"] not in (None, len(value)) or (meta["nonempty"] and not value):
            raise _wrong(value, hint, meta, path)
        return [
            check_value(item, args[0], meta, f"{path}[{index}]") for index, item in enumerate(value)
        ]
    elif origin is dict and isinstance(value, dict):
        return {
            key: check_value(item, args[1], meta, f"{path}.{key}") for key, item in value.items()
        }
    elif _fits(value, hint, meta):
        return value
    raise _wrong(value, hint, meta, path)


def _check_option(values: Any, options: dict[str, type], path: str) -> Any:
    name = values.get("name") if isinstance(values, dict) else None
    if name not in options:
        raise ConfigError(f"{path}.name must be one of {', '.join(sorted(options))}, got {name!r}")
    return check_group(values, options[name], path, f"{path} '{name}'")


def _fits(value: Any, hint: Any, meta: dict) -> bool:
    """Whether a plain value (not a list or a mapping) is of type `hint`, in range."""
    if hint is NULL:
        return value is None
    if typing.get_origin(hint) is Literal:
        # `type(...) is` keeps true from passing for 1 and 1 for 1.0.
        typed = any(value == arg and type(value) is type(arg) for arg in typing.get_args(hint))
    elif hint in (int, float):
        kinds = (int,) if hint is int else (int, float)
        typed = isinstance(value, kinds) and not isinstance(value, bool)
        typed = typed and math.isfinite(value) and meta["bounds"].holds(value)
    else:
        typed = hint is Any or (hint in (bool, str) and isinstance(value, hint))
    return typed and (meta["rule"] is None or meta["rule"](value))


def _same_container(value: Any, hint: Any) -> bool:
    """Whether `value` is the list, mapping or group of settings that `hint` asks for (its
    items checked later)."""
    origin = typing.get_origin(hint)
    return (origin is list and isinstance(value, list)) or (
        (origin is dict or dataclasses.is_dataclass(hint)) and isinstance(value, dict)
    )


def _wrong(value: Any, hint: Any, meta: dict, path: str) -> ConfigError:
    # inf is within a range with no upper end: say what is wrong with it.
    infinite = isinstance(value, float) and not math.isfinite(value)
    return ConfigError(
        f"{path} must be {meta['allowed'] or describe(hint, meta)}, got {value!r}"
        f"{', which is not finite' if infinite else ''}"
    )


def describe(hint: Any, meta: dict, plural: bool = False) -> str:
    """What a type (with the field's range and length) allows, in words."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in _UNIONS:
        kinds = [describe(arg, meta, plural) for arg in args if arg is not NULL]
        words = ", ".join(kinds[:-1]) + f" or {kinds[-1]}" if len(kinds) > 1 else kinds[0]
        return f"{words} or null" if NULL in args else words
    if origin is Literal:
        return f"{'values among' if plural else 'one of'} {', '.join(map(str, args))}"
    if origin is list:
        count = f"{meta['length']} " if meta["length"] else ""
        kind = "a non-empty list" if meta["nonempty"] else "a list"
        return f"{kind} of {count}{describe(args[0], meta, plural=True)}"
    if origin is dict:
        return f"a mapping of names to {describe(args[1], meta, plural=True)}"
    if dataclasses.is_dataclass(hint):
        return f"a group of settings ({', '.join(f.name for f in dataclasses.fields(hint))})"
    words = _WORDS.get(hint, ("any value", "any values"))[plural]
    bounds = str(meta["bounds"]) if hint in (int, float) else ""
    return f"{words} {bounds}".strip()


_WORDS = {
    bool: ("true or false", "true or false values"),
    int: ("an integer", "integers"),
    float: ("a number", "numbers"),
    str: ("a string", "strings"),
}


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key
