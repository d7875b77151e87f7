"""The prepare stage: split, standardise with training statistics only, write.

Classification is split stratified, regression at random, forecasting by time (its
windows overlap, so shuffling them across splits would leak test values into training).
Every source's data is checked in the type it is stored in (float32) before any of this,
so that nothing NaN or infinite is ever written.

Layout written to the output directory:
    train.npz, val.npz, test.npz   arrays `x` (float32) and `y` (int64 labels or float32;
                                   multi-task: each head's columns side by side)
    meta.json                      task, shapes, classes, heads, statistics, the data settings,
                                   the source (its `_target_` and a digest of its package's
                                   code) and a content hash of the arrays
"""

import dataclasses
import hashlib
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.model_selection import train_test_split

from dlpipe import files
from dlpipe.config.checks import to_dict
from dlpipe.data.raw import RawData, check_stored, head_slices
from dlpipe.data.sources import load_source, source_record
from dlpipe.errors import ConfigError

SPLITS = ("train", "val", "test")


def split(raw: RawData, val: float, test: float, seed: int) -> dict[str, tuple]:
    """Train/val/test split; `val` and `test` are fractions of the whole set."""
    if raw.task == "forecasting":
        return _split_by_time(raw, val, test)
    labels = _class_column(raw)
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


def _class_column(raw: RawData):
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


def limit_training(splits: dict[str, tuple], per_class: int) -> dict[str, tuple]:
    """Keep the first `per_class` training samples of each class: a small labelled set.

    Validation and test splits stay whole, so the small set is judged as the full one is.
    """
    x, y = splits["train"]
    keep = np.concatenate([np.flatnonzero(y == label)[:per_class] for label in np.unique(y)])
    keep.sort()
    return {**splits, "train": (x[keep], y[keep])}


def _feature_axes(x: np.ndarray) -> tuple[int, ...]:
    """Axes to average over: all but the channels of images, all but the features otherwise."""
    return (0, 2, 3) if x.ndim == 4 else tuple(range(x.ndim - 1))


def checked(raw: RawData, where: str) -> RawData:
    """`raw` with its values as float32, or a DataError naming the first sample that float32
    cannot hold: whatever a source returns is checked here, in the type it is stored in."""
    x = check_stored(raw.x, "x", where)
    y = raw.y if raw.task == "classification" else check_stored(raw.y, "y", where)
    return dataclasses.replace(raw, x=x, y=y)


def _mean_std(values: np.ndarray, axes: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """In float64: values that fit float32 can have a variance that does not (1e30 -> 1e60).

    From float32 values, both fit float32 (the standard deviation is at most half the
    range), and so do the standardised values.
    """
    mean = values.mean(axis=axes, keepdims=True, dtype=np.float64)
    return mean, values.std(axis=axes, keepdims=True, dtype=np.float64)


def statistics(splits: dict[str, tuple], raw: RawData) -> dict[str, list]:
    """Means and standard deviations of the training split's inputs (and regression targets)."""
    x, y = splits["train"]
    stats = dict(zip(("x_mean", "x_std"), _mean_std(x, _feature_axes(x)), strict=True))
    task = raw.task
    if task == "regression":
        stats.update(zip(("y_mean", "y_std"), _mean_std(y, (0,)), strict=True))
    elif task == "multitask":  # regression targets only: class indices stay as they are
        values = np.concatenate(
            [np.full(head["columns"], head["task"] == "regression") for head in raw.heads]
        )
        mean, std = _mean_std(y, (0,))
        stats.update(y_mean=np.where(values, mean, 0.0), y_std=np.where(values, std, 1.0))
    elif task == "forecasting":  # the target is the series' first feature, on its scale
        stats.update(y_mean=stats["x_mean"][..., :1], y_std=stats["x_std"][..., :1])
    # A constant feature has nothing to scale: leave it as it is.
    return {
        key: np.where(value == 0, 1.0, value) if "std" in key else value
        for key, value in stats.items()
    }


def standardise(splits: dict[str, tuple], stats: dict[str, np.ndarray]) -> dict[str, tuple]:
    scaled = {}
    for name, (x, y) in splits.items():
        x = (x - stats["x_mean"]) / stats["x_std"]
        if "y_mean" in stats:
            y = (y - stats["y_mean"].reshape(1, -1)) / stats["y_std"].reshape(1, -1)
            y = y.astype(np.float32)
        scaled[name] = (x.astype(np.float32), y)
    return scaled


def content_hash(splits: dict[str, tuple]) -> str:
    digest = hashlib.sha256()
    for name in SPLITS:
        for array in splits[name]:
            digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


def prepare(data_cfg: Any, out_dir: Path) -> dict:
    """Prepare the configured data set into `out_dir`; return its meta data."""
    settings = {key: value for key, value in to_dict(data_cfg).items() if key != "batch_size"}
    where = f"data file {settings['path']}" if "path" in settings else f"data '{data_cfg.name}'"
    raw = checked(load_source(settings), where)
    cut = data_cfg.split
    splits = split(raw, cut.val, cut.test, cut.seed)
    per_class = settings.get("train_per_class")
    if per_class is not None:
        if raw.task != "classification" or not isinstance(per_class, int) or per_class < 1:
            raise ConfigError(
                "data.train_per_class must be a positive number of samples, and the data "
                f"must be for classification; got {per_class!r} for {raw.task} data"
            )
        splits = limit_training(splits, per_class)
    stats = statistics(splits, raw) if data_cfg.normalise else {}
    if stats:
        splits = standardise(splits, stats)
    meta = {
        "name": data_cfg.name,
        "data": settings,
        # The source's `_target_` and a digest of its package's code (see code_digest).
        "source": source_record(settings["_target_"]),
        "task": raw.task,
        "input_shape": list(raw.x.shape[1:]),
        "num_outputs": raw.num_outputs,
        "classes": raw.classes,
        "heads": raw.heads,
        "pixel_range": raw.pixel_range,
        "sizes": {name: len(splits[name][1]) for name in SPLITS},
        "stats": {key: value.astype(float).tolist() for key, value in stats.items()},
        "hash": content_hash(splits),
    }
    files.clear_partial(out_dir)
    for name in SPLITS:
        x, y = splits[name]
        with files.atomic_path(out_dir / f"{name}.npz") as tmp, open(tmp, "wb") as handle:
            np.savez(handle, x=x, y=y)
    files.write_json(out_dir / "meta.json", meta)
    return meta
