"""Splitting samples into training, validation and test: stratified by class where there
are classes, at random for regression, by time for forecasting (its windows overlap, so
shuffling them across splits would leak test values into training)."""

import numpy as np

from dlpipe.data.raw import RawData, head_slices
from dlpipe.errors import ConfigError

SPLITS = ("train", "val", "test")


def split(raw: RawData, val: float, test: float, seed: int) -> dict[str, tuple]:
    """Train/val/test split; `val` and `test` are fractions of the whole set."""
    # Imported here: scikit-learn takes 1.5 s to import, and only prepare splits.
    from sklearn.model_selection import train_test_split

    if raw.task == "forecasting":
        return _split_by_time(raw, val, test)
    labels = class_column(raw)
    try:
        x_rest, x_test, y_rest, y_test = train_test_split(
            raw.x, raw.y, test_size=test, stratify=labels(raw.y), random_state=seed
        )
        x_train, x_val, y_train, y_val = train_test_split(
            x_rest, y_rest, test_size=val / (1 - test), stratify=labels(y_rest), random_state=seed
        )
    except ValueError as exc:  # a split too small to hold every class once
        raise ConfigError(
            f"data.split (val={val}, test={test}) cannot split {len(raw.y)} samples"
            f"{f' of {len(raw.classes)} classes' if raw.classes else ''}: raise the fractions "
            f"({exc})"
        ) from exc
    return {"train": (x_train, y_train), "val": (x_val, y_val), "test": (x_test, y_test)}


def class_column(raw: RawData):
    """What to stratify a split by: the labels, or a multi-task set's first class target."""
    if raw.task == "classification":
        return lambda y: y
    for head in raw.heads or ():
        if head["task"] == "classification":
            column = head_slices(raw.heads, "columns")[head["name"]].start
            return lambda y: y[:, column]
    return lambda y: None


def _split_by_time(raw: RawData, val: float, test: float) -> dict[str, tuple]:
    count = len(raw.y)
    val_start = round(count * (1 - val - test))
    test_start = round(count * (1 - test))
    if not 0 < val_start < test_start < count:
        raise ConfigError(f"data.split (val={val}, test={test}) leaves a split of {count} empty")
    bounds = {"train": (0, val_start), "val": (val_start, test_start), "test": (test_start, count)}
    return {name: (raw.x[a:b], raw.y[a:b]) for name, (a, b) in bounds.items()}


def carve(pool: tuple, raw: RawData, fraction: float, seed: int, name: str) -> tuple[tuple, tuple]:
    """`fraction` of the training rows `pool` split off as split `name`: the last part in
    time (forecasting), else a seeded draw, stratified by class where there are classes."""
    x, y = pool
    if fraction == 0:
        raise ConfigError(
            f"data.split.{name}=0 leaves no {name} samples: set data.split.{name} in (0, 1), "
            f"or give them with data.{name}_path or the split column"
        )
    if raw.task == "forecasting":
        start = round(len(y) * (1 - fraction))
        if not 0 < start < len(y):
            raise ConfigError(f"data.split.{name}={fraction} leaves a split of {len(y)} empty")
        return (x[:start], y[:start]), (x[start:], y[start:])
    from sklearn.model_selection import train_test_split

    try:
        kept, carved = train_test_split(
            np.arange(len(y)), test_size=fraction, stratify=class_column(raw)(y), random_state=seed
        )
    except ValueError as exc:  # too few rows to hold every class once
        raise ConfigError(
            f"data.split.{name}={fraction} cannot split {len(y)} training samples"
            f"{f' of {len(raw.classes)} classes' if raw.classes else ''}: raise it ({exc})"
        ) from exc
    kept, carved = np.sort(kept), np.sort(carved)
    return (x[kept], y[kept]), (x[carved], y[carved])


def limit_training(splits: dict[str, tuple], per_class: int) -> dict[str, tuple]:
    """Keep the first `per_class` training samples of each class: a small labelled set.

    Validation and test splits stay whole, so the small set is judged as the full one is.
    """
    x, y = splits["train"]
    keep = np.concatenate([np.flatnonzero(y == label)[:per_class] for label in np.unique(y)])
    keep.sort()
    return {**splits, "train": (x[keep], y[keep])}
