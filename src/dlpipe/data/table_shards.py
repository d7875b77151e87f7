"""Tables larger than memory, prepared in shards: read a block of rows at a time, twice.

A CSV or Parquet file larger than data.shards.above_mb is never read whole (a block at a
time: pandas' chunked reader for CSV, pyarrow for Parquet):
1. a scan reads the target, the split column and the text columns only: every row's
   label (or value) and split, and each categorical column's categories, which one-hot
   encoding needs before any row is encoded;
2. a second pass reads every feature column, encodes each block as dlpipe.data.tables
   encodes a table in memory, and sends each row to its split. Training rows go to one of
   as many buckets as there will be training shards, drawn with the split's seed; each
   bucket is then shuffled and written as a shard by a pool of processes, so that the
   shards hold the rows in a random order however the file is sorted (a shuffle buffer
   at training time could not mix a file sorted by label).
Memory: a block, a few bytes a row (its label, split and bucket) and the bucket each
writing process holds.
"""

import multiprocessing
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from dlpipe.data import tables
from dlpipe.data.raw import RawData, class_indices, class_outputs
from dlpipe.data.shard_prepare import (
    MIB,
    combined,
    drawn_splits,
    finish,
    moments,
    shard_settings,
    shards_meta,
    staged,
)
from dlpipe.data.shards import Layout, shard_path, write_shard
from dlpipe.data.splitting import SPLITS
from dlpipe.errors import ConfigError, DataError

# The source whose files this module prepares.
TABLE = "dlpipe.data.tables.table"
# Bytes of the file read as one block.
BLOCK_BYTES = 32 * MIB


def streams(settings: dict) -> bool:
    """Whether the data is a table whose file is larger than data.shards.above_mb."""
    if settings.get("_target_") != TABLE or not settings.get("path"):
        return False
    path = Path(settings["path"])
    return path.is_file() and path.stat().st_size > shard_settings(settings).above_mb * MIB


def blocks(path: Path, columns: list[str] | None = None) -> Iterator[pd.DataFrame]:
    """The table at `path` (its `columns`; None: all), a block of rows at a time.

    Raises:
        DataError: the file is missing, of another format, or unreadable, naming it.
    """
    import pyarrow as pa

    if not path.is_file():
        raise DataError(f"data file {path} does not exist: set data.path to a CSV or Parquet file")
    if path.suffix.lower() not in tables.READERS:
        raise DataError(f"data file {path} is not CSV or Parquet: use one of .csv, .parquet")
    reader = _csv_blocks if path.suffix.lower() == ".csv" else _parquet_blocks
    try:
        yield from reader(path, columns)
    except (pa.ArrowException, OSError) as exc:
        raise DataError(
            f"data file {path} cannot be read: {str(exc).splitlines()[0]}: fix the file, or "
            "raise data.shards.above_mb above its size to read it whole"
        ) from exc


def _csv_blocks(path: Path, columns: list[str] | None) -> Iterator[pd.DataFrame]:
    """A CSV file's blocks of about BLOCK_BYTES, read by pandas' C parser: pyarrow's
    streaming reader reads ahead many blocks (a 1 GiB file held 1 GiB at its peak)."""
    with open(path, "rb") as handle:
        sample = handle.read(1 << 20)
    row_bytes = max(1, len(sample) // max(1, sample.count(b"\n")))
    rows = max(1, BLOCK_BYTES // row_bytes)
    try:
        yield from pd.read_csv(path, chunksize=rows, usecols=columns)
    except pd.errors.EmptyDataError as exc:
        raise DataError(f"data file {path} is empty: add a header row and data rows") from exc
    except (pd.errors.ParserError, ValueError, UnicodeDecodeError) as exc:
        raise DataError(f"data file {path} cannot be read: {str(exc).splitlines()[0]}") from exc


def _parquet_blocks(path: Path, columns: list[str] | None) -> Iterator[pd.DataFrame]:
    import pyarrow.parquet as pq

    table = pq.ParquetFile(path)
    width = max(1, len(table.schema_arrow))
    rows = max(1, BLOCK_BYTES // (8 * width))
    for batch in table.iter_batches(batch_size=rows, columns=columns):
        yield batch.to_pandas()


def _text_columns(path: Path) -> dict[str, bool]:
    """Each column of the file, and whether it holds text (its first block says)."""
    first = next(blocks(path), None)
    if first is None:
        raise DataError(f"data file {path} holds no rows: add data rows, or set data.path")
    return {
        str(name): not (
            pd.api.types.is_numeric_dtype(first[name]) or pd.api.types.is_bool_dtype(first[name])
        )
        for name in first.columns
    }


@dataclass(frozen=True)
class TableScan:
    """What the first pass finds (see the module's docstring).

    Attributes:
        rows: the file's data rows.
        columns: the feature columns in order, each with its categories (sorted, as they
            are one-hot encoded) or None where it is numeric; serving reads them.
        y: every row's class index, or its value (float32, shaped (rows, 1)).
        classes: the class names; None for regression.
        split: every row's split as the split column says it, an index into SPLITS
            (int8), or None.
    """

    rows: int
    columns: list[dict]
    y: np.ndarray
    classes: list[str] | None
    split: np.ndarray | None

    @property
    def features(self) -> int:
        return sum(len(column["categories"] or [None]) for column in self.columns)


def scan(path: Path, target: str, task: str, listed: list[str], split_column: str | None):
    """The first pass over the table at `path` (see TableScan): `target` learnt as `task`,
    the columns `listed` (data.categorical) one-hot encoded, as is text with no number."""
    text = _text_columns(path)
    known = [target, *([split_column] if split_column else [])]
    for column in [*known, *listed]:
        if column not in text:
            raise DataError(
                f"data file {path} has no column '{column}' (it has {', '.join(text)}): set "
                "data.target, data.categorical and data.split.column"
            )
    candidates = [n for n in text if n not in known and (text[n] or n in listed)]
    categories = _Categories(path, listed)
    targets = _Targets(path, target, task)
    splits, start = [], 0
    for frame in blocks(path, [*known, *candidates]):
        targets.add(frame, start)
        if split_column:
            names = tables.split_assignment(frame, split_column, path, start)
            splits.append(np.select([names == name for name in SPLITS], [0, 1, 2]).astype(np.int8))
        for name in candidates:
            categories.add(frame, name, start)
        start += len(frame)
    found = categories.found()
    columns = [{"name": name, "categories": found.get(name)} for name in text if name not in known]
    y, classes = targets.found()
    return TableScan(start, columns, y, classes, np.concatenate(splits) if split_column else None)


class _Categories:
    """The categories of a table's text columns, block by block: a column is categorical
    when data.categorical lists it or none of its values is a number (as
    dlpipe.data.tables decides for a whole table)."""

    def __init__(self, path: Path, listed: list[str]) -> None:
        self.path, self.listed = path, listed
        self.values: dict[str, set] = {}
        self.numeric: set[str] = set()
        # The first missing value of each column, said only if it proves categorical.
        self.missing: dict[str, DataError] = {}

    def add(self, frame: pd.DataFrame, name: str, start: int) -> None:
        if name in self.numeric:
            return
        if name not in self.listed and pd.to_numeric(frame[name], errors="coerce").notna().any():
            self.numeric.add(name)
            return
        try:
            tables.check_no_missing(frame, name, self.path, "category", start)
        except DataError as exc:
            self.missing.setdefault(name, exc)
        self.values.setdefault(name, set()).update(frame[name].astype(str))

    def found(self) -> dict[str, list[str]]:
        """Each categorical column's categories, sorted as one-hot encoding orders them."""
        categorical = {n: sorted(v) for n, v in self.values.items() if n not in self.numeric}
        for name in categorical:
            if name in self.missing:
                raise self.missing[name]
        return categorical


class _Targets:
    """Every row's target, block by block: a regression's values, or a class's index kept
    as a code per row (a label held as text would cost its string per row)."""

    def __init__(self, path: Path, column: str, task: str) -> None:
        self.path, self.column, self.task = path, column, task
        self.parts: list[np.ndarray] = []
        self.codes: dict = {}  # each label seen -> its code, in the order first seen

    def add(self, frame: pd.DataFrame, start: int) -> None:
        if self.task == "regression":
            self.parts.append(tables.numeric_column(frame, self.column, self.path, start))
            return
        tables.check_no_missing(frame, self.column, self.path, "label", start)
        labels = frame[self.column]
        if not pd.api.types.is_numeric_dtype(labels):
            labels = labels.astype(str)
        seen, inverse = np.unique(labels.to_numpy(), return_inverse=True)
        code = np.array([self.codes.setdefault(value, len(self.codes)) for value in seen.tolist()])
        self.parts.append(code[inverse].astype(np.int32))

    def found(self) -> tuple[np.ndarray, list[str] | None]:
        """The targets, and the class names, sorted as class_indices sorts them."""
        if self.task == "regression":
            return np.concatenate(self.parts)[:, None], None
        order, classes = class_indices(np.array(list(self.codes)))
        rank = order.astype(np.int64)  # code -> its class's index
        return rank[np.concatenate(self.parts)], classes


def split_rows(scan: TableScan, settings: dict, path: Path) -> dict[str, np.ndarray]:
    """Each split's rows: drawn by the data.split fractions, or as the split column marks
    them (validation carved from the training rows where it marks none)."""
    task = "classification" if scan.classes is not None else "regression"
    indices = RawData(np.arange(scan.rows)[:, None], scan.y, task, scan.classes)
    if scan.split is None:
        return drawn_splits(indices, settings, {})
    column = settings["split"]["column"]
    marked = {name: np.flatnonzero(scan.split == code) for code, name in enumerate(SPLITS)}
    for name in ("train", "test"):
        if not len(marked[name]):
            raise DataError(f"data file {path}: column '{column}' marks no row {name}: mark some")
    given = {
        name: (rows[:, None], scan.y[rows])
        for name, rows in marked.items()
        if name != "train" and len(rows)
    }
    pool = (marked["train"][:, None], scan.y[marked["train"]])
    return drawn_splits(indices, settings, given, pool)


def encoded(frame: pd.DataFrame, columns: list[dict], path: Path, start: int) -> np.ndarray:
    """A block's feature columns as the model's inputs (float32), encoded as
    dlpipe.data.tables encodes a whole table: numbers as they are, categories one-hot."""
    parts = []
    for column in columns:
        name, categories = column["name"], column["categories"]
        if categories is None:
            parts.append(tables.numeric_column(frame, name, path, start)[:, None])
        else:
            codes = pd.Categorical(frame[name].astype(str), categories=categories).codes
            parts.append(np.eye(len(categories), dtype=np.float32)[codes])
    return np.concatenate(parts, axis=1)


class _SplitWriter:
    """A validation or test split's rows, in the file's order, into shards of `rows`."""

    def __init__(self, staging: Path, split: str, layout: Layout, rows: int) -> None:
        self.staging, self.split, self.layout, self.rows = staging, split, layout, rows
        self.held: list[tuple[np.ndarray, np.ndarray]] = []
        self.records: list[dict] = []

    def add(self, x: np.ndarray, y: np.ndarray) -> None:
        self.held.append((x, y))
        while sum(len(y) for _, y in self.held) >= self.rows:
            self._write(self.rows)

    def close(self) -> list[dict]:
        if self.held:
            self._write(None)
        return self.records

    def _write(self, rows: int | None) -> None:
        x = np.concatenate([x for x, _ in self.held])
        y = np.concatenate([y for _, y in self.held])
        rows = len(y) if rows is None else rows
        path = shard_path(self.staging, self.split, len(self.records))
        self.records.append(write_shard(path, x[:rows], y[:rows], self.layout))
        self.held = [(x[rows:], y[rows:])] if rows < len(y) else []


@dataclass(frozen=True)
class _Bucket:
    """One training shard's rows, gathered in two files, to be shuffled and written."""

    x_file: Path
    y_file: Path
    shard: Path
    layout: Layout
    seed: tuple[int, int]


def _write_bucket(bucket: _Bucket) -> tuple[dict, tuple]:
    """Write `bucket`'s rows, shuffled, as its shard; its record and its rows' moments."""
    layout = bucket.layout
    x = np.fromfile(bucket.x_file, dtype=np.float32).reshape(-1, *layout.shape)
    y_type, y_shape = (np.int64, ()) if layout.y_shape is None else (np.float32, layout.y_shape)
    y = np.fromfile(bucket.y_file, dtype=y_type).reshape(-1, *y_shape)
    order = np.random.default_rng(bucket.seed).permutation(len(x))
    x, y = x[order], y[order]
    bucket.x_file.unlink()
    bucket.y_file.unlink()
    return write_shard(bucket.shard, x, y, layout), moments(x, 1.0)


def write_table(
    path: Path, scan: TableScan, order: dict, y: np.ndarray, out: tuple, seed: int
) -> tuple[dict[str, list[dict]], list[tuple], Layout]:
    """The second pass (see the module's docstring): every split's shards of `path`'s
    rows, their targets `y`, as `out` says (the staging folder, rows per shard, writing
    processes); their records, the training shards' moments and the layout."""
    staging, rows, workers = out
    layout = Layout((scan.features,), "float32", None if scan.classes is not None else (1,))
    where = np.full(scan.rows, -1, dtype=np.int8)
    for code, name in enumerate(SPLITS):
        where[order[name]] = code
    bucket = np.full(scan.rows, -1, dtype=np.int32)
    bucket[order["train"]] = np.arange(len(order["train"])) // rows
    (staging / "buckets").mkdir(parents=True)
    buckets = [
        _Bucket(
            staging / "buckets" / f"{index}.x",
            staging / "buckets" / f"{index}.y",
            shard_path(staging, "train", index),
            layout,
            (seed, index),
        )
        for index in range(-(-len(order["train"]) // rows))
    ]
    writers = {name: _SplitWriter(staging, name, layout, rows) for name in ("val", "test")}
    start = 0
    for frame in blocks(path, [column["name"] for column in scan.columns]):
        x, at = encoded(frame, scan.columns, path, start), np.arange(start, start + len(frame))
        for code, name in enumerate(SPLITS):
            chosen = where[at] == code
            if name in writers and chosen.any():
                writers[name].add(x[chosen], y[at[chosen]])
        _to_buckets(x, y[at], bucket[at], buckets)
        start += len(frame)
    records = {name: writer.close() for name, writer in writers.items()}
    return (*_written_buckets(buckets, records, workers), layout)


def _to_buckets(x: np.ndarray, y: np.ndarray, bucket: np.ndarray, buckets: list[_Bucket]):
    """A block's training rows appended to their buckets' files."""
    for index in np.unique(bucket[bucket >= 0]):
        chosen = bucket == index
        with open(buckets[index].x_file, "ab") as handle:
            handle.write(np.ascontiguousarray(x[chosen]).tobytes())
        with open(buckets[index].y_file, "ab") as handle:
            handle.write(np.ascontiguousarray(y[chosen]).tobytes())


def _written_buckets(
    buckets: list[_Bucket], records: dict, workers: int
) -> tuple[dict, list[tuple]]:
    """The training buckets written as shards by `workers` processes; every split's
    records, and the training shards' moments."""
    with multiprocessing.get_context("spawn").Pool(max(1, min(workers, len(buckets)))) as pool:
        written = list(pool.imap(_write_bucket, buckets))
    return {"train": [record for record, _ in written], **records}, [m for _, m in written]


def check_settings(settings: dict) -> None:
    """What a table prepared in shards cannot do, each refused in one line.

    Raises:
        ConfigError: several targets, or a test or validation file.
    """
    above = "or raise data.shards.above_mb above the file's size to prepare it in memory"
    if isinstance(settings["target"], list) or isinstance(settings.get("task"), list):
        raise ConfigError(
            f"data.target lists several columns, but a table larger than data.shards.above_mb "
            f"is prepared for one target: give one data.target, {above}"
        )
    for name in ("test", "val"):
        if settings.get(f"{name}_path") is not None:
            raise ConfigError(
                f"data.{name}_path is set, but a table larger than data.shards.above_mb takes "
                f"its splits from its own rows: mark them with data.split.column, {above}"
            )


def target_statistics(scan: TableScan, train: np.ndarray, normalise) -> dict[str, np.ndarray]:
    """A regression target's mean and deviation over the training rows (where the data is
    normalised), which standardise it as the in-memory path does."""
    if scan.classes is not None or normalise is not True:
        return {}
    values = scan.y[train].astype(np.float64)
    std = values.std(axis=0, keepdims=True)
    return {"y_mean": values.mean(axis=0, keepdims=True), "y_std": np.where(std == 0, 1.0, std)}


def prepare_table_in_shards(settings: dict, out_dir: Path, source: dict, workers: int) -> dict:
    """Prepare the table data.path names into shards in `out_dir`, its training buckets
    written by `workers` processes; return meta.json's content, written last."""
    check_settings(settings)
    path, cut = Path(settings["path"]), settings["split"]
    task = settings.get("task") or "classification"
    found = scan(path, settings["target"], task, settings.get("categorical") or [], cut["column"])
    order = split_rows(found, settings, path)
    y_stats = target_statistics(found, order["train"], settings["normalise"])
    y = found.y
    if y_stats:
        y = ((y - y_stats["y_mean"]) / y_stats["y_std"]).astype(np.float32)
    rows = max(1, int(shard_settings(settings).size_mb * MIB) // (4 * found.features))
    with staged(out_dir) as staging:
        records, parts, layout = write_table(
            path, found, order, y, (staging, rows, workers), cut["seed"]
        )
    x_stats = combined(parts) if settings["normalise"] is True else {}
    meta = {
        "name": settings["name"],
        "data": settings,
        "source": source,
        "task": "classification" if found.classes is not None else "regression",
        "input_shape": [found.features],
        "num_outputs": class_outputs(found.classes) if found.classes is not None else 1,
        "classes": found.classes,
        "heads": None,
        "pixel_range": None,
        "padded": False,
        "stats": {k: v.astype(float).tolist() for k, v in {**x_stats, **y_stats}.items()},
        **shards_meta(layout, 1.0, records),
        "split": _split_record(cut, found.split),
        # The feature columns, with their categories: serving reads them from here.
        "columns": found.columns,
    }
    finish(out_dir, meta)
    return meta


def _split_record(cut: dict, marked: np.ndarray | None) -> dict:
    """meta.json's `split`, as the in-memory path records it."""
    if marked is None:
        return {"mode": "fractions", "val": cut["val"], "test": cut["test"], "seed": cut["seed"]}
    column = f"column {cut['column']}"
    val = column if (marked == SPLITS.index("val")).any() else f"{cut['val']} of the training rows"
    return {"mode": "column", "test": column, "val": val, "seed": cut["seed"]}
