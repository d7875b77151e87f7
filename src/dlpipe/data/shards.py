"""Prepared data as shards: Parquet files of fixed-size samples, read a row group at a time.

Parquet, because pyarrow (already a dependency) writes and reads it at the speed of a
memory copy, Ray Data reads it as it is (`ray.data.read_parquet`), so each Ray Train
worker streams its own part, and DVC tracks a folder of them as any other output. A
sample is one fixed-size binary value, the bytes of its array in the stored type (8-bit
pixels for images, float32 otherwise), so that a row group becomes one numpy array
without a copy.

Layout, beside meta.json (whose `shards` lists each file with its rows and digest):
    shards/<split>/<index>.parquet   columns `x` (fixed-size binary), `y` (int64 labels,
                                     or fixed-size binary float32 targets)
"""

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dlpipe import files
from dlpipe.errors import DataError

FOLDER = "shards"
# Rows per Parquet row group: the unit a reader decodes at once.
ROW_GROUP_BYTES = 8 << 20


@dataclass(frozen=True)
class Layout:
    """How a sample is stored: its shape and type, and its targets' (none: int64 labels)."""

    shape: tuple[int, ...]
    dtype: str
    y_shape: tuple[int, ...] | None = None

    @property
    def sample_bytes(self) -> int:
        return int(np.prod(self.shape)) * np.dtype(self.dtype).itemsize

    def record(self) -> dict:
        return {
            "shape": list(self.shape),
            "dtype": self.dtype,
            "y_shape": self.y_shape and list(self.y_shape),
        }

    @staticmethod
    def of(record: dict) -> "Layout":
        y_shape = record.get("y_shape")
        return Layout(tuple(record["shape"]), record["dtype"], y_shape and tuple(y_shape))


def shard_path(folder: Path, split: str, index: int) -> Path:
    return Path(folder) / FOLDER / split / f"{index:05d}.parquet"


def write_shard(path: Path, x: np.ndarray, y: np.ndarray, layout: Layout) -> dict:
    """Write samples `x` with targets `y` as one shard at `path` (atomically); its record
    for meta.json: the file relative to the prepared folder, its rows and its digest."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({"x": _binary(x, layout.dtype), "y": _targets(y, layout)})
    rows = max(1, ROW_GROUP_BYTES // max(1, layout.sample_bytes))
    with files.atomic_path(path) as tmp:
        pq.write_table(table, tmp, row_group_size=rows, compression="none")
    return {
        "file": path.relative_to(path.parents[2]).as_posix(),
        "rows": len(x),
        "sha256": files.sha256(path),
    }


def _binary(values: np.ndarray, dtype: str):
    """One fixed-size binary value per sample: its bytes in `dtype`."""
    import pyarrow as pa

    values = np.ascontiguousarray(values, dtype=dtype)
    width = values[0].nbytes if len(values) else np.dtype(dtype).itemsize
    return pa.FixedSizeBinaryArray.from_buffers(
        pa.binary(width), len(values), [None, pa.py_buffer(values.reshape(-1).view(np.uint8))]
    )


def _targets(y: np.ndarray, layout: Layout):
    import pyarrow as pa

    if layout.y_shape is None:
        return pa.array(np.asarray(y, dtype=np.int64))
    return _binary(y, "float32")


def read_groups(
    folder: Path, record: dict, layout: Layout
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """The shard `record` of the prepared folder `folder`, a row group at a time, as (x, y)
    arrays shaped as `layout` says.

    Raises:
        DataError: the shard is missing or cannot be read, naming it.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(folder) / record["file"]
    try:
        shard = pq.ParquetFile(path)
        for group in range(shard.num_row_groups):
            yield table_arrays(shard.read_row_group(group), layout)
    except (OSError, pa.ArrowException, ValueError) as exc:
        raise DataError(f"shard {path} cannot be read ({exc}): rerun the prepare stage") from exc


def table_arrays(table, layout: Layout) -> tuple[np.ndarray, np.ndarray]:
    """A table of shard rows (pyarrow) as (x, y) arrays shaped as `layout` says."""
    return _array(table.column("x"), layout.dtype, layout.shape), _labels(table, layout)


def _array(column, dtype: str, shape: tuple[int, ...]) -> np.ndarray:
    """A fixed-size binary column as an array of `shape` per row, without a copy where the
    column is one chunk."""
    chunk = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    data = chunk.buffers()[1]
    width = chunk.type.byte_width
    start = chunk.offset * width
    values = np.frombuffer(data, dtype=np.uint8)[start : start + len(chunk) * width]
    return values.view(dtype).reshape(len(chunk), *shape)


def _labels(table, layout: Layout) -> np.ndarray:
    column = table.column("y")
    if layout.y_shape is None:
        return column.to_numpy()
    return _array(column, "float32", layout.y_shape)
