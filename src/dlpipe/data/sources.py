"""Data sources by `_target_`: dlpipe's sets (shipped inside installed packages or
generated from a seed: nothing is downloaded), the user's files, and a user's own source.

A source is a function of its own settings (the keys of its data config beyond those
every data set has: dlpipe.config.schema.data.COMMON), found at the config's `_target_`. It
returns either RawData, or arrays `(x, y)`: samples first, y of floats a regression's
targets, any other y (integers, text, booleans) a classification's labels, each distinct
label a class. The prepare stage splits, standardises, hashes and writes either alike.

A source that can stream data larger than memory also names, as its attribute `listing`,
a function of the same settings that returns a dlpipe.data.shard_prepare.Listing: the
samples known by item and label, read later, a shard at a time (see shard_prepare).
"""

import hashlib
from typing import get_args

import numpy as np

from dlpipe.config.schema import targets
from dlpipe.config.schema.data import Tokeniser, source_settings, target_of
from dlpipe.data.raw import TASKS, RawData, from_arrays
from dlpipe.data.text import Texts
from dlpipe.errors import ConfigError, DataError


def load_source(data_cfg: dict) -> RawData:
    """Load the data a data config names, with its settings."""
    return as_raw(call_source(data_cfg), target_of(data_cfg))


def call_source(data_cfg: dict) -> object:
    """What the source a data config names returns, given its settings."""
    return targets.load(target_of(data_cfg))(**source_settings(data_cfg))


def load_listing(data_cfg: dict):
    """The Listing of the data a data config names, where its source can stream; else None."""
    listing = getattr(targets.load(target_of(data_cfg)), "listing", None)
    return None if listing is None else listing(**source_settings(data_cfg))


def as_raw(returned: object, target: str) -> RawData:
    """What the source at `target` returned, as RawData."""
    where = f"data source {target}"
    if isinstance(returned, RawData):
        if returned.task not in TASKS:
            raise DataError(f"{where} returned data of task {returned.task!r}: use one of {TASKS}")
        return returned
    if isinstance(returned, tuple) and len(returned) == 2:
        x, y = (np.asarray(array) for array in returned)
        task = "regression" if np.issubdtype(y.dtype, np.floating) else "classification"
        return from_arrays(x, y, task, where)
    if isinstance(returned, Texts):
        raise ConfigError(
            f"{where} returned texts, which need a tokeniser: set data.text.tokeniser "
            f"({', '.join(get_args(Tokeniser))})"
        )
    raise DataError(
        f"{where} returned {type(returned).__name__}: return arrays (x, y), samples first, "
        "or a dlpipe.data.raw.RawData"
    )


def code_digest(target: str) -> str:
    """A digest of the source code of the package that `target` is in: every .py file of
    its top-level package (or its module, when that is a single file), so that any change
    to a source, or to the helpers it calls, shows in the prepared data's record."""
    module = target.rpartition(".")[0]
    found = targets.module_file(module.split(".")[0]) or targets.module_file(module)
    if found is None:
        return ""
    files = sorted(found.parent.rglob("*.py")) if found.name == "__init__.py" else [found]
    digest = hashlib.sha256()
    for file in files:
        digest.update(file.relative_to(found.parent).as_posix().encode())
        digest.update(file.read_bytes())
    return digest.hexdigest()


def source_record(target: str) -> dict:
    """What meta.json records of the source that made the data."""
    return {"_target_": target, "code": code_digest(target)}
