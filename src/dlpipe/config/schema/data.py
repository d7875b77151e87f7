"""The settings of a data set (conf/data/*.yaml): those every data set has, and its
source's own.

A data config names its source, a function returning the samples, by `_target_:
package.module.function` (dlpipe's, e.g. dlpipe.data.synthetic.linear, or a user's), and
holds the settings every data set has (`Data`: its name, split, batch size, ...) beside
the source's own, which the source's signature declares (see dlpipe.config.schema.targets).
"""

import dataclasses
import typing
from dataclasses import dataclass
from typing import Any, Literal

from dlpipe.config.schema import targets
from dlpipe.config.schema.check import check_group, setting
from dlpipe.errors import ConfigError


@dataclass(kw_only=True)
class Split:
    """How the samples are split. `val` and `test` are fractions of the samples, used only
    for a split that no file (data.val_path, data.test_path) and no `column` of the data
    gives; 0 where one does. With a test file or a split column they are fractions of the
    training rows."""

    val: float = setting(ge=0, lt=1)
    test: float = setting(ge=0, lt=1)
    seed: int = setting(ge=0)
    # A column whose values (train, val or test) say which split each row is in.
    column: str | None = setting(default=None)
    # k-fold cross-validation: the prepare stage numbers the training and validation rows
    # 0..folds-1 (`folds`); a training validates on the rows of fold `fold`, trains on the rest.
    folds: int | None = setting(ge=2, default=None)
    fold: int | None = setting(ge=0, default=None)

    def __post_init__(self) -> None:
        if self.val + self.test >= 1:
            raise ConfigError(
                "data.split.val + data.split.test must be below 1 to leave training data"
            )
        if self.fold is not None and self.folds is None:
            raise ConfigError(
                f"data.split.fold={self.fold} is set without data.split.folds: set "
                "data.split.folds=k as the data was prepared with, or leave data.split.fold unset"
            )
        if self.fold is not None and self.fold >= self.folds:
            raise ConfigError(
                f"data.split.fold={self.fold} is not a fold of data.split.folds={self.folds}: "
                f"use 0 to {self.folds - 1}"
            )


@dataclass(kw_only=True)
class Shards:
    """When prepared data is written in shards and streamed (data larger than memory):
    when its prepared size (as float32) is above `above_mb` MiB (0: always), in files of
    about `size_mb` MiB. Only a source that can stream (one with a `listing`) is."""

    above_mb: float = setting(ge=0, default=1024)
    size_mb: float = setting(gt=0, default=64)


@dataclass(kw_only=True)
class Stream:
    """How shards are read: by `workers` processes (null: the cores; 0: in the training
    process), each shuffling among `buffer` samples. Also the prepare stage's processes."""

    workers: int | None = setting(ge=0, default=None)
    buffer: int = setting(gt=0, default=2048)


# How text becomes tokens (see dlpipe.data.tokenise).
Tokeniser = Literal["bpe", "wordpiece", "char"]


@dataclass(kw_only=True)
class Text:
    """How a text source's texts become token ids at the prepare stage: a tokeniser of
    `tokeniser`'s kind with at most `vocab_size` tokens, trained on the training split;
    `context` tokens per sample (a classified text cut after them; a language model's
    window); `lowercase`: texts lowercased first."""

    tokeniser: Tokeniser
    vocab_size: int = setting(gt=2, default=1000)
    context: int = setting(gt=1, default=128)
    lowercase: bool = setting(default=False)


@dataclass(kw_only=True)
class Data:
    """What every data set has: read by the prepare stage and the loaders, not the source.

    `name` names the data set in runs, lineage and the model registry (registry.name
    auto), unless the source reads a user's file (`path`): then that file's stem does.
    """

    name: str
    split: Split
    batch_size: int = setting(gt=0)
    # true: standardise with the training split's statistics; series: z-normalise each
    # series (sequence) on its own, per channel.
    normalise: bool | Literal["series"] = setting(allowed="true, false or series")
    # Classification only, which the prepare stage checks once it has the data.
    train_per_class: int | None = setting(gt=0, default=None)
    # Files of the test and validation samples, read by the source as `path` is.
    test_path: str | None = setting(default=None)
    val_path: str | None = setting(default=None)
    shards: Shards = setting(default=None)
    stream: Stream = setting(default=None)
    # Texts only (a text source's data): how they are tokenised.
    text: Text | None = setting(default=None)
    # Filled in by check_data, never read from the config: the source and its settings.
    source: str = setting(default="")
    settings: dict[str, Any] = setting(default=None)

    def __post_init__(self) -> None:
        """A split fraction may be 0 only where a file or the split column gives that split."""
        for name, given in (("val", self.val_path), ("test", self.test_path)):
            if getattr(self.split, name) == 0 and given is None and self.split.column is None:
                raise ConfigError(
                    f"data.split.{name}=0 leaves no {name} samples: set data.split.{name} in "
                    f"(0, 1), give a file of them with data.{name}_path, or name a split "
                    "column with data.split.column"
                )


# The keys of a data config that are not its source's settings.
COMMON = (
    "_target_",
    "name",
    "split",
    "batch_size",
    "normalise",
    "train_per_class",
    "test_path",
    "val_path",
    "shards",
    "stream",
    "text",
)


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
    _check_split_sources(checked, found, path, label(values))
    _check_text(checked, found, path, label(values))
    return dataclasses.replace(checked, source=target_of(values, path), settings=own)


# Common keys that only a source reading a file (`path`) takes.
_FILES = ("test_path", "val_path")
# Common keys that only a source reading files has use for: they are listed for it only.
_FOR_FILES = (*_FILES, "shards", "stream")


def _check_split_sources(data: Data, found: targets.Signature, path: str, name: str) -> None:
    """Split files are read as `path` is, and a split column by the source's `split_column`:
    a source without them cannot keep a split."""
    for key in _FILES:
        if getattr(data, key) is not None and "path" not in found.settings and not found.open:
            raise ConfigError(
                f"{path}.{key} is set, but {name} reads no file (its source takes no path): "
                f"leave {path}.{key} unset and split by data.split.val and data.split.test"
            )
    if data.split.column is not None and "split_column" not in found.settings:
        raise ConfigError(
            f"{path}.split.column={data.split.column} is set, but {name} reads no columns (its "
            f"source takes no split_column): leave {path}.split.column unset"
        )


# What a text source returns (dlpipe.data.text.Texts, dlpipe.data.tagged.Tagged), by its
# return type hint.
TEXTS = frozenset({"Texts", "Tagged"})


def _check_text(data: Data, found: targets.Signature, path: str, name: str) -> None:
    """Texts need a tokeniser, and only texts take one; a source whose return type is not
    shown may return either. Settings that make no sense for texts are refused."""
    texts = bool(TEXTS & found.returns)
    if texts and data.text is None:
        raise ConfigError(
            f"{name} returns texts, which need a tokeniser: set {path}.text.tokeniser "
            f"({', '.join(typing.get_args(Tokeniser))})"
        )
    if found.returns and not texts and data.text is not None:
        shown = ", ".join(sorted(found.returns))
        raise ConfigError(
            f"{path}.text is set, but {name} returns {shown}, not texts: leave {path}.text unset"
        )
    if data.text is None:
        return
    for key, value in (
        ("normalise", data.normalise),
        ("train_per_class", data.train_per_class),
        ("split.folds", data.split.folds),
    ):
        if value not in (None, False):
            raise ConfigError(
                f"{path}.{key}={value} is not read for texts: leave it unset (normalise: false)"
            )


def _own(data: dict) -> dict:
    return {key: value for key, value in data.items() if key not in COMMON}


def _listed(key: str, found: targets.Signature) -> bool:
    """Whether a common key is worth naming for a source: file settings for a source
    reading files, the tokeniser for one returning texts."""
    if key in _FOR_FILES:
        return "path" in found.settings
    return key != "text" or bool(TEXTS & found.returns)


def _signature(data: dict, path: str) -> targets.Signature:
    """The source's settings; a key that is neither one of them nor common is refused,
    with every key the data set takes."""
    found = targets.signature(target_of(data, path))
    for key in _own(data):
        if key not in found.settings and not found.open:
            common = [key for key in COMMON[1:] if _listed(key, found)]
            takes = ", ".join([*common, *found.settings])
            raise ConfigError(f"{path}.{key} is not a setting of {label(data)}: it takes {takes}")
    return found
