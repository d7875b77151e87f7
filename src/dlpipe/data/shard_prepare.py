"""The prepare stage for data larger than memory: read in parallel, written in shards.

A source that can stream gives a `Listing` (its samples known by item, a file, and label
before any is read) instead of the samples. The splits are drawn over the items; then
each shard's items are read and written by one of a pool of processes, so that at most
`workers` shards are in memory at once, whatever the data's size. The training split's
normalisation statistics are gathered in the same pass (per-shard moments, combined).
Every shard is written into a temporary folder that replaces the previous shards only
once all are written: a failure leaves the previous prepared data as it was.
"""

import hashlib
import multiprocessing
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dlpipe import files
from dlpipe.config.schema.data import Shards, Stream
from dlpipe.data.raw import RawData, feature_axes
from dlpipe.data.shards import FOLDER, Layout, shard_path, write_shard
from dlpipe.data.sources import load_listing
from dlpipe.data.splitting import carve, limit_training, split
from dlpipe.errors import ConfigError, DataError

MIB = 1 << 20


@dataclass(frozen=True)
class Listing:
    """A data set known by its items before any is read.

    Attributes:
        items: what `read` reads, one per sample (picklable: file paths).
        y: each item's class index.
        classes: the class names.
        layout: how a sample is stored.
        read: items -> their samples as one array of `layout` (a picklable function, run in
            the pool's processes); a DataError it raises names the item.
        unit: what a stored value is divided by to give the model's input before
            standardising (255: 8-bit pixels scaled to [0, 1]).
        pixel_range: images only, as RawData's.
    """

    items: list
    y: np.ndarray
    classes: list[str]
    layout: Layout
    read: Callable[[list], np.ndarray]
    unit: float = 1.0
    pixel_range: float | None = None

    def in_memory(self) -> RawData:
        """Every sample read now, as the arrays path holds them."""
        x = self.read(self.items).astype(np.float32) / np.float32(self.unit)
        return RawData(x, self.y, "classification", self.classes, pixel_range=self.pixel_range)

    def prepared_bytes(self) -> int:
        """The size of the data prepared in memory: float32, as the arrays path holds it."""
        return len(self.items) * int(np.prod(self.layout.shape)) * 4


def shard_settings(data: dict) -> Shards:
    """data.shards, its defaults where not given."""
    return Shards(**(data.get("shards") or {}))


def processes(data: dict) -> int:
    """The processes that prepare and read shards: data.stream.workers, else the cores."""
    workers = Stream(**(data.get("stream") or {})).workers
    return max(1, workers if workers is not None else (os.cpu_count() or 1))


def streams(listing: Listing, data: dict) -> bool:
    """Whether `listing` is prepared in shards: its prepared size is above data.shards.above_mb."""
    return listing.prepared_bytes() > shard_settings(data).above_mb * MIB


def split_items(
    listing: Listing, settings: dict, others: dict[str, Listing]
) -> dict[str, np.ndarray]:
    """Each split's items (indices into `listing`, or into the test or validation file's
    own listing in `others`): see drawn_splits."""
    indices = RawData(
        np.arange(len(listing.items))[:, None], listing.y, "classification", listing.classes
    )
    given = {
        name: (np.arange(len(other.items))[:, None], other.y) for name, other in others.items()
    }
    return drawn_splits(indices, settings, given)


def drawn_splits(
    indices: RawData, settings: dict, given: dict[str, tuple], pool: tuple | None = None
) -> dict[str, np.ndarray]:
    """Each split's rows, as the arrays path draws them from data whose samples are their
    own indices (`indices`): by the data.split fractions, or the splits `given` (files, a
    split column) with those not given carved from `pool` (where a split column limits
    it: else every row); the training rows then shuffled with the split's seed, so that
    each shard holds every class."""
    cut = settings["split"]
    if cut.get("folds"):
        raise ConfigError(
            "data.split.folds is set, but data prepared in shards (above data.shards.above_mb) "
            "cannot be cross-validated: leave data.split.folds unset or raise data.shards.above_mb"
        )
    if not given and pool is None:
        chosen = split(indices, cut["val"], cut["test"], cut["seed"])
    else:
        pool, chosen = pool or (indices.x, indices.y), dict(given)
        for name in ("test", "val"):
            if name not in chosen:
                pool, chosen[name] = carve(pool, indices, cut[name], cut["seed"], name)
        chosen["train"] = pool
    per_class = settings.get("train_per_class")
    if per_class is not None:
        chosen = limit_training(chosen, per_class)
    order = {name: x[:, 0] for name, (x, _) in chosen.items()}
    order["train"] = np.random.default_rng(cut["seed"]).permutation(order["train"])
    return order


@dataclass(frozen=True)
class _Job:
    """One shard to read and write, in a pool process."""

    folder: Path
    split: str
    index: int
    items: list
    y: np.ndarray
    # The listing's reader, layout and unit, not the listing: each job carries its own
    # items only, or every queued job would hold the whole list of items.
    read: Callable[[list], np.ndarray]
    layout: Layout
    unit: float
    moments: bool


def _write(job: _Job) -> tuple[str, dict, tuple | None]:
    """Read `job`'s items and write them as its shard; the moments of its samples' values
    when it is a training shard."""
    path = shard_path(job.folder, job.split, job.index)
    try:
        x = job.read(job.items)
    except DataError as exc:
        raise DataError(f"{exc} (shard {job.split}/{path.name})") from None
    record = write_shard(path, x, job.y, job.layout)
    return job.split, record, moments(x, job.unit) if job.moments else None


# Samples whose float64 values are held at once while moments are taken: a shard's
# values in float64 would be 8 times its 8-bit pixels.
MOMENT_BYTES = 16 * MIB


def moments(x: np.ndarray, unit: float) -> tuple[int, np.ndarray, np.ndarray]:
    """Count, mean and sum of squared deviations per channel or feature, in float64, of
    the values the model is given (stored values over `unit`), block by block of rows."""
    axes = feature_axes(x)
    rows = max(1, MOMENT_BYTES // max(1, x[:1].size * 8))
    blocks = []
    for start in range(0, len(x), rows):
        values = x[start : start + rows].astype(np.float64) / unit
        mean = values.mean(axis=axes, keepdims=True)
        count = values.size // mean.size
        blocks.append((count, mean, ((values - mean) ** 2).sum(axis=axes, keepdims=True)))
    return _merged(blocks)


def _merged(moments: list[tuple]) -> tuple[int, np.ndarray, np.ndarray]:
    """Moments of several parts as one (Chan et al.'s pairwise update)."""
    count, mean, squares = moments[0]
    for other_count, other_mean, other_squares in moments[1:]:
        total = count + other_count
        delta = other_mean - mean
        mean = mean + delta * other_count / total
        squares = squares + other_squares + delta**2 * count * other_count / total
        count = total
    return count, mean, squares


def combined(moments: list[tuple]) -> dict[str, np.ndarray]:
    """Mean and standard deviation from per-shard moments, as one pass over all the values
    would give them; a constant one's deviation is 1."""
    count, mean, squares = _merged(moments)
    std = np.sqrt(squares / count)
    return {"x_mean": mean, "x_std": np.where(std == 0, 1.0, std)}


def _jobs(
    folder: Path, listings: dict[str, Listing], order: dict[str, np.ndarray], rows: int
) -> list[_Job]:
    jobs = []
    for name, indices in order.items():
        listing = listings[name]
        for index, start in enumerate(range(0, len(indices), rows)):
            chosen = indices[start : start + rows]
            items = [listing.items[i] for i in chosen]
            jobs.append(
                _Job(
                    folder,
                    name,
                    index,
                    items,
                    listing.y[chosen],
                    listing.read,
                    listing.layout,
                    listing.unit,
                    name == "train",
                )
            )
    return jobs


@contextmanager
def staged(out_dir: Path) -> Iterator[Path]:
    """A temporary folder to write shards into (under its `shards/`), which replaces
    `out_dir`/shards once the block inside finishes; removed whatever happens, so that a
    failure leaves the previous shards as they were."""
    staging = Path(out_dir) / f".{FOLDER}.staging"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        yield staging
        target = Path(out_dir) / FOLDER
        shutil.rmtree(target, ignore_errors=True)
        os.replace(staging / FOLDER, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def write_all(
    out_dir: Path,
    listing: Listing,
    others: dict[str, Listing],
    order: dict[str, np.ndarray],
    shards: Shards,
    workers: int,
) -> tuple[dict[str, list[dict]], list[tuple]]:
    """Every split's shards, written by a pool of processes (see staged); their records
    and the training shards' moments."""
    listings = {"train": listing, "val": listing, "test": listing, **others}
    rows = max(1, int(shards.size_mb * MIB) // listing.layout.sample_bytes)
    records: dict[str, list[dict]] = {name: [] for name in order}
    found = []
    with staged(out_dir) as staging, multiprocessing.get_context("spawn").Pool(workers) as pool:
        for name, record, moment in pool.imap(_write, _jobs(staging, listings, order, rows)):
            records[name].append(record)
            if moment is not None:
                found.append(moment)
    return records, found


def content_hash(records: dict[str, list[dict]]) -> str:
    """A digest of every shard's digest, split by split."""
    digest = hashlib.sha256()
    for name in sorted(records):
        for record in records[name]:
            digest.update(f"{name}/{record['sha256']}".encode())
    return digest.hexdigest()


def shards_meta(layout: Layout, unit: float, records: dict[str, list[dict]]) -> dict:
    """The keys of meta.json that list the shards and their digest."""
    return {
        "sizes": {name: sum(record["rows"] for record in found) for name, found in records.items()},
        "hash": content_hash(records),
        "format": "shards",
        "shards": {"layout": layout.record(), "unit": unit, **records},
    }


def prepared_meta(listing: Listing, records: dict, stats: dict) -> dict:
    """The keys of meta.json that describe the shards (the rest as the arrays path writes)."""
    return {
        "task": "classification",
        "input_shape": list(listing.layout.shape),
        "num_outputs": len(listing.classes),
        "classes": listing.classes,
        "heads": None,
        "pixel_range": listing.pixel_range,
        "padded": False,
        "stats": {key: value.astype(float).tolist() for key, value in stats.items()},
        **shards_meta(listing.layout, listing.unit, records),
    }


def prepare_in_shards(
    settings: dict, listing: Listing, out_dir: Path, source: dict, workers: int
) -> dict:
    """Prepare `listing` (its test and validation files' listings read as it was) into
    shards in `out_dir` with `workers` processes; return meta.json's content, written last."""
    if settings["normalise"] == "series":
        raise ConfigError(
            "data.normalise=series scales each series as a whole in memory, but this data "
            "is prepared in shards (above data.shards.above_mb): use data.normalise=true, "
            "or raise data.shards.above_mb"
        )
    shards = shard_settings(settings)
    paths = {name: settings.get(f"{name}_path") for name in ("test", "val")}
    others = {
        name: load_listing({**settings, "path": path})
        for name, path in paths.items()
        if path is not None
    }
    order = split_items(listing, settings, others)
    records, found = write_all(out_dir, listing, others, order, shards, workers)
    stats = combined(found) if settings["normalise"] is True else {}
    how = {name: path for name, path in paths.items() if path is not None}
    cut = settings["split"]
    meta = {
        "name": settings["name"],
        "data": settings,
        "source": source,
        **prepared_meta(listing, records, stats),
        "split": {"mode": "files" if how else "fractions", **how, "seed": cut["seed"]},
    }
    finish(out_dir, meta)
    return meta


def finish(out_dir: Path, meta: dict) -> None:
    """Write meta.json beside the shards, last; a previous prepare's arrays go (DVC would
    keep both)."""
    for stale in Path(out_dir).glob("*.npz"):
        stale.unlink()
    files.write_json(Path(out_dir) / "meta.json", meta)
