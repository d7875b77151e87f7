"""The prepare stage: split, standardise with training statistics only, write.

Classification is split stratified, regression at random, forecasting by time (its
windows overlap, so shuffling them across splits would leak test values into training).
Every source's data is checked in the type it is stored in (float32) before any of this,
so that nothing NaN or infinite is ever written.

Layout written to the output directory:
    train.npz, val.npz, test.npz   arrays `x` (float32) and `y` (int64 labels or float32;
                                   multi-task: each head's columns side by side); with
                                   data.split.folds, train and val also `fold` (int64)
    meta.json                      task, shapes, classes, heads, statistics, the data settings,
                                   the source (its `_target_` and a digest of its package's
                                   code) and a content hash of the arrays
"""

import dataclasses
import hashlib
import shutil
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.model_selection import KFold, StratifiedKFold

from dlpipe import files
from dlpipe.config.checks import prepared_settings, to_dict
from dlpipe.data import table_shards
from dlpipe.data.raw import RawData, check_padded, check_stored, feature_axes, head_slices
from dlpipe.data.sequences import z_normalised
from dlpipe.data.shard_prepare import prepare_in_shards, processes, streams
from dlpipe.data.shards import FOLDER
from dlpipe.data.sources import load_listing, load_source, source_record
from dlpipe.data.splitting import SPLITS, carve, class_column, limit_training, split
from dlpipe.data.text_prepare import TOKENISER_FILE, prepare_text
from dlpipe.errors import ConfigError, DataError


def kept_splits(settings: dict, train: RawData) -> tuple[RawData, dict[str, tuple], dict]:
    """The splits that the data itself gives (`train`'s split column) or files give
    (data.test_path, data.val_path), validation carved from the training rows where none
    is given; and meta.json's record of how. No splits where nothing is given: split by
    fractions. Returned with the training data, padded to the longest series of the files."""
    cut = settings["split"]
    paths = {name: settings.get(f"{name}_path") for name in ("test", "val")}
    paths = {name: path for name, path in paths.items() if path is not None}
    if train.split is None and not paths:
        return train, {}, {"mode": "fractions", "val": cut["val"], "test": cut["test"]}
    train, read = _padded_alike(
        train, {name: _read(settings, path) for name, path in paths.items()}
    )
    pool, given, record = _column_splits(train, settings)
    for name, other in read.items():
        if name in given:
            raise ConfigError(
                f"data.{name}_path={paths[name]} is set, but column '{cut.get('column')}' "
                f"marks {name} rows too: leave data.{name}_path unset, or mark no row {name}"
            )
        other = on_training_terms(other, train, paths[name], settings.get("path"))
        given[name], record[name] = (other.x, other.y), paths[name]
    if "test" not in given and train.split is not None:
        raise DataError(
            f"data file {settings.get('path')}: column '{cut.get('column')}' marks no row "
            "test: mark the test rows, or give a file of them with data.test_path"
        )
    for name in ("test", "val"):
        if name not in given:
            pool, given[name] = carve(pool, train, cut[name], cut["seed"], name)
            record[name] = f"{cut[name]} of the training rows"
    mode = "column" if train.split is not None else "files"
    return train, {"train": pool, **given}, {"mode": mode, **record}


def _column_splits(train: RawData, settings: dict) -> tuple[tuple, dict, dict]:
    """The training rows, the val and test rows a split column marks, and where from."""
    if train.split is None:
        return (train.x, train.y), {}, {}
    column = settings["split"].get("column")
    chosen = {name: train.split == name for name in SPLITS}
    if not chosen["train"].any():
        raise DataError(f"data file {settings.get('path')}: column '{column}' marks no row train")
    given = {
        name: (train.x[chosen[name]], train.y[chosen[name]])
        for name in ("val", "test")
        if chosen[name].any()
    }
    pool = (train.x[chosen["train"]], train.y[chosen["train"]])
    return pool, given, dict.fromkeys(given, f"column {column}")


def _padded_alike(train: RawData, others: dict[str, RawData]) -> tuple[RawData, dict]:
    """Padded series of several files, each padded at its end to the longest of them all."""
    if not train.padded:
        return train, others
    steps = max(raw.x.shape[1] for raw in [train, *others.values()])
    return _padded_to(train, steps), {name: _padded_to(raw, steps) for name, raw in others.items()}


def _padded_to(raw: RawData, steps: int) -> RawData:
    if not raw.padded or raw.x.shape[1] >= steps:
        return raw
    padding = [(0, 0), (0, steps - raw.x.shape[1])] + [(0, 0)] * (raw.x.ndim - 2)
    return dataclasses.replace(raw, x=np.pad(raw.x, padding, constant_values=np.nan))


def on_training_terms(other: RawData, train: RawData, path: str, train_path: str) -> RawData:
    """A test or validation file's data with its classes as the training file's indices,
    or a DataError naming what it holds that the training file does not."""
    where = f"data file {path}"
    if other.task != train.task:
        raise DataError(
            f"{where} holds {other.task} data, but the training file {train_path} holds "
            f"{train.task} data: give files of the same kind"
        )
    other = _columns_matched(other, train, where)
    for name, ours, theirs in (("samples", other.x, train.x), ("targets", other.y, train.y)):
        if ours.shape[1:] != theirs.shape[1:]:
            raise DataError(
                f"{where} gives {name} shaped {ours.shape[1:]}, but the training file "
                f"{train_path} gives {theirs.shape[1:]}: give it the training file's columns "
                "(images: set data.size)"
            )
    if other.task == "classification":
        y = _class_indices(other.y, other.classes, train.classes, where)
        return dataclasses.replace(other, y=y, classes=train.classes)
    if other.task != "multitask":
        return other
    y = other.y.copy()
    columns = head_slices(train.heads, "columns")
    for ours, theirs in zip(other.heads, train.heads, strict=True):
        if theirs["task"] == "classification":
            at = columns[theirs["name"]].start
            y[:, at] = _class_indices(
                y[:, at].astype(np.int64), ours["classes"], theirs["classes"], where
            )
    return dataclasses.replace(other, y=y, heads=train.heads)


def _columns_matched(other: RawData, train: RawData, where: str) -> RawData:
    """A table's columns in the training file's order; a category it lacks is a column of
    zeros, one the training file lacks is refused, as is a column of either file alone."""
    if train.features is None or other.features is None or other.features == train.features:
        return other
    known = {tuple(feature): i for i, feature in enumerate(train.features)}
    for column, category in other.features:
        if (column, category) not in known:
            what = f"category '{category}' in " if category is not None else ""
            raise DataError(
                f"{where} holds {what}column '{column}', which the training file does not: "
                "give it the training file's columns and categories"
            )
    present = {column for column, _ in other.features}
    for column, _ in train.features:
        if column not in present:
            raise DataError(
                f"{where} lacks column '{column}' of the training file: give it the training "
                "file's columns"
            )
    x = np.zeros((len(other.x), len(train.features)), dtype=other.x.dtype)
    x[:, [known[tuple(feature)] for feature in other.features]] = other.x
    return dataclasses.replace(other, x=x, features=train.features)


def _class_indices(y: np.ndarray, names: list[str], known: list[str], where: str) -> np.ndarray:
    """Indices into `names` as indices into `known`; a class not in `known` is refused."""
    unknown = [name for name in names if name not in known]
    if unknown:
        raise DataError(
            f"{where} holds class '{unknown[0]}', which the training file does not "
            f"({', '.join(known)}): a model cannot learn it; drop those rows or add "
            "samples of it to the training file"
        )
    return np.array([known.index(name) for name in names], dtype=np.int64)[y]


def _read(settings: dict, path: str | None = None) -> RawData:
    """The data set's samples: of its training file (its split column read), or of the
    file at `path` read as that file is."""
    column = settings["split"].get("column")
    if path is not None:
        settings = {**settings, "path": path}
    elif column is not None:
        settings = {**settings, "split_column": column}
    where = f"data file {settings['path']}" if "path" in settings else f"data '{settings['name']}'"
    return series_normalised(checked(load_source(settings), where), settings["normalise"])


def checked(raw: RawData, where: str) -> RawData:
    """`raw` with its values as float32, or a DataError naming the first sample that float32
    cannot hold: whatever a source returns is checked here, in the type it is stored in.
    Padded sequences may end in steps of all NaN (see RawData.padded)."""
    x = (check_padded if raw.padded else check_stored)(raw.x, "x", where)
    y = raw.y if raw.task == "classification" else check_stored(raw.y, "y", where)
    return dataclasses.replace(raw, x=x, y=y)


def _mean_std(
    values: np.ndarray, axes: tuple[int, ...], padded: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """In float64: values that fit float32 can have a variance that does not (1e30 -> 1e60).

    From float32 values, both fit float32 (the standard deviation is at most half the
    range), and so do the standardised values. Padded sequences' NaN steps are left out.
    """
    if padded:
        mean = np.nanmean(values, axis=axes, keepdims=True, dtype=np.float64)
        return mean, np.nanstd(values, axis=axes, keepdims=True, dtype=np.float64)
    mean = values.mean(axis=axes, keepdims=True, dtype=np.float64)
    return mean, values.std(axis=axes, keepdims=True, dtype=np.float64)


def statistics(splits: dict[str, tuple], raw: RawData) -> dict[str, list]:
    """Means and standard deviations of the training split's inputs (and regression targets)."""
    x, y = splits["train"]
    x_stats = _mean_std(x, feature_axes(x), raw.padded)
    stats = dict(zip(("x_mean", "x_std"), x_stats, strict=True))
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


def series_normalised(raw: RawData, normalise: bool | str) -> RawData:
    """With `normalise: series`, each series z-normalised per channel over its own steps,
    as time-series classification does: its shape, not its level or scale, is learnt."""
    if normalise != "series":
        return raw
    if raw.task == "forecasting":
        raise ConfigError(
            "data.normalise=series scales each input series on its own, which forecast "
            "targets cannot follow: use data.normalise=true"
        )
    return dataclasses.replace(raw, x=z_normalised(raw.x))


def training_statistics(
    splits: dict[str, tuple], raw: RawData, normalise: bool | str
) -> dict[str, np.ndarray]:
    """The training split's statistics that standardise the data: none when not normalised;
    with `normalise: series` (inputs scaled each on their own) the targets' only."""
    if not normalise:
        return {}
    stats = statistics(splits, raw)
    if normalise == "series":
        return {key: value for key, value in stats.items() if not key.startswith("x_")}
    return stats


def standardise(splits: dict[str, tuple], stats: dict[str, np.ndarray]) -> dict[str, tuple]:
    scaled = {}
    for name, (x, y) in splits.items():
        if "x_mean" in stats:
            x = (x - stats["x_mean"]) / stats["x_std"]
        if "y_mean" in stats:
            y = (y - stats["y_mean"].reshape(1, -1)) / stats["y_std"].reshape(1, -1)
            y = y.astype(np.float32)
        scaled[name] = (x.astype(np.float32), y)
    return scaled


def assign_folds(
    splits: dict[str, tuple], raw: RawData, folds: int, seed: int
) -> dict[str, np.ndarray]:
    """Each training and validation row's fold, 0..folds-1, for k-fold cross-validation:
    drawn with `seed`, stratified by class where there are classes, so that every fold
    holds each class. Test rows are in no fold. Forecasting is refused: its windows
    overlap in time, so a fold in the middle would be validated on values it trained on."""
    if raw.task == "forecasting":
        raise ConfigError(
            f"data.split.folds={folds} cannot cross-validate forecasting data: its windows "
            "overlap in time, so folds would leak; leave data.split.folds unset"
        )
    y = np.concatenate([splits["train"][1], splits["val"][1]])
    labels = class_column(raw)(y)
    _check_fold_count(folds, len(y), labels, raw.classes)
    order = np.zeros(len(y), dtype=np.int64)
    splitter = (KFold if labels is None else StratifiedKFold)(
        folds, shuffle=True, random_state=seed
    )
    for number, (_, rows) in enumerate(splitter.split(np.zeros(len(y)), labels)):
        order[rows] = number
    count = len(splits["train"][1])
    return {"train": order[:count], "val": order[count:]}


def _check_fold_count(folds: int, rows: int, labels: np.ndarray | None, classes) -> None:
    """Every fold must hold a row (of each class, where there are classes)."""
    if labels is None:
        if rows < folds:
            raise ConfigError(
                f"data.split.folds={folds} exceeds the {rows} training and validation rows: "
                "lower data.split.folds"
            )
        return
    values, counts = np.unique(labels, return_counts=True)
    if counts.min() < folds:
        label = values[counts.argmin()]
        name = classes[int(label)] if classes else f"{label:g}"
        raise ConfigError(
            f"data.split.folds={folds} exceeds the {counts.min()} training and validation "
            f"rows of class '{name}', and every fold must hold each class: lower "
            "data.split.folds"
        )


def content_hash(splits: dict[str, tuple], folds: dict[str, np.ndarray] | None = None) -> str:
    """A digest of the arrays written, folds included where there are any."""
    digest = hashlib.sha256()
    for name in SPLITS:
        for array in splits[name]:
            digest.update(np.ascontiguousarray(array).tobytes())
    for name, array in (folds or {}).items():
        digest.update(name.encode() + np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


def prepare(data_cfg: Any, out_dir: Path) -> dict:
    """Prepare the configured data set into `out_dir`; return its meta data. Data larger
    than data.shards.above_mb, of a source that can stream or a table, is written in
    shards (see shard_prepare, table_shards); all other data as one array per split."""
    settings = prepared_settings(data_cfg)
    source, workers = source_record(settings["_target_"]), processes(to_dict(data_cfg))
    if settings.get("text") is not None:
        return prepare_text(settings, Path(out_dir), source)
    if table_shards.streams(settings):
        return table_shards.prepare_table_in_shards(settings, out_dir, source, workers)
    listing = load_listing(settings)
    if listing is not None and streams(listing, settings):
        return prepare_in_shards(settings, listing, out_dir, source, workers)
    raw, splits, how = kept_splits(settings, _read(settings))
    if not splits:
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
    stats = training_statistics(splits, raw, data_cfg.normalise)
    if stats:
        splits = standardise(splits, stats)
    count = settings["split"].get("folds")
    folds = assign_folds(splits, raw, count, settings["split"]["seed"]) if count else {}
    meta = {
        "name": data_cfg.name,
        "data": settings,
        # The source's `_target_` and a digest of its package's code (see code_digest).
        "source": source,
        "task": raw.task,
        "input_shape": list(raw.x.shape[1:]),
        "num_outputs": raw.num_outputs,
        "classes": raw.classes,
        "heads": raw.heads,
        "pixel_range": raw.pixel_range,
        "padded": raw.padded,
        "sizes": {name: len(splits[name][1]) for name in SPLITS},
        # Where each split came from: fractions of the data, a split column, or files.
        "split": {**how, "seed": data_cfg.split.seed, **({"folds": count} if count else {})},
        "stats": {key: value.astype(float).tolist() for key, value in stats.items()},
        "hash": content_hash(splits, folds),
    }
    files.clear_partial(out_dir)
    # Another layout's files: DVC would keep them beside the arrays.
    shutil.rmtree(Path(out_dir) / FOLDER, ignore_errors=True)
    (Path(out_dir) / TOKENISER_FILE).unlink(missing_ok=True)
    for name in SPLITS:
        x, y = splits[name]
        with files.atomic_path(out_dir / f"{name}.npz") as tmp, open(tmp, "wb") as handle:
            np.savez(handle, x=x, y=y, **({"fold": folds[name]} if name in folds else {}))
    files.write_json(out_dir / "meta.json", meta)
    return meta
