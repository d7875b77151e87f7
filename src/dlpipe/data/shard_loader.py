"""Batches streamed from shards: read by worker processes, shuffled from a seed, standardised.

Epoch k's order is drawn from the seed and k alone: the shards' order, then a shuffle
buffer in each reading process, so that the same seed, epoch and number of workers give
the same batches, also after a resume (the epoch is set by resume.EpochOrder as for
in-memory data). Workers split the shards among themselves and send chunks of shuffled
samples; the training process cuts them into batches of exactly `batch_size`, so an
epoch has as many steps as the in-memory path's. At most `workers` x (buffer + a row
group) samples are in memory at once, whatever the data's size.
"""

import ctypes
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dlpipe.config.checks import to_dict
from dlpipe.config.schema.data import Stream
from dlpipe.data.shards import Layout, read_groups, table_arrays
from dlpipe.errors import DataError


class ShardChunks(torch.utils.data.IterableDataset):
    """Chunks of (x, y) from a split's shards for one epoch, standardised as float32.

    Each reading process takes every n-th shard of the epoch's shard order and keeps a
    buffer of samples, from which it sends a random chunk each time the buffer is full.
    """

    def __init__(self, folder: Path, records: list[dict], meta: dict, order: tuple) -> None:
        """`order`: (shuffle, seed, epoch, buffer)."""
        self.folder, self.records = Path(folder), records
        self.decoder = Decoder(meta)
        self.shuffle, self.seed, self.epoch, self.buffer = order

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        info = torch.utils.data.get_worker_info()
        worker, workers = (0, 1) if info is None else (info.id, info.num_workers)
        shards = np.arange(len(self.records))
        if self.shuffle:
            shards = np.random.default_rng([self.seed, self.epoch]).permutation(shards)
        layout = self.decoder.layout
        groups = (
            group
            for index in shards[worker::workers]
            for group in read_groups(self.folder, self.records[index], layout)
        )
        if self.shuffle:
            rng = np.random.default_rng([self.seed, self.epoch, worker])
            groups = _shuffled(groups, self.buffer, rng)
        try:
            yield from (self.decoder.tensors(x, y) for x, y in groups)
        except DataError as exc:
            # Sent, not raised: torch would wrap it in its worker's traceback.
            yield Failed(str(exc))


@dataclass(frozen=True)
class Failed:
    """What a reading process sends in place of a chunk when a shard cannot be read."""

    message: str


class Decoder:
    """Stored samples as the model is given them: float32, over the stored type's unit,
    standardised with the training split's statistics where the data is normalised."""

    def __init__(self, meta: dict) -> None:
        self.layout = Layout.of(meta["shards"]["layout"])
        unit = meta["shards"]["unit"]
        stats = meta.get("stats", {})
        mean = torch.tensor(stats.get("x_mean", 0.0), dtype=torch.float64)
        std = torch.tensor(stats.get("x_std", 1.0), dtype=torch.float64)
        # (x / unit - mean) / std as one multiply and one subtract, in place.
        self.scale = (1 / (unit * std)).float()
        self.shift = (mean / std).float()

    def tensors(self, x: np.ndarray, y: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        values = torch.from_numpy(x).to(torch.float32, copy=True)
        values.mul_(self.scale).sub_(self.shift)
        return values, torch.from_numpy(np.array(y))

    def table(self, table) -> tuple[torch.Tensor, torch.Tensor]:
        """A pyarrow table of shard rows (as Ray Data gives them) as tensors."""
        return self.tensors(*table_arrays(table, self.layout))


def _shuffled(groups: Iterator, buffer: int, rng: np.random.Generator) -> Iterator[tuple]:
    """Row groups' samples in a random order, through a buffer of `buffer` samples: each
    group joins it, and once it holds `buffer`, as many random samples as the group had
    leave it (in one chunk). Only a group's worth moves each time, never the buffer."""
    held: list[np.ndarray] = []
    count = size = 0
    for x, y in groups:
        size = len(y)
        if not held or count + size > len(held[1]):
            held = _room(held, count, buffer + size, (x, y))
        held[0][count : count + size], held[1][count : count + size] = x, y
        count += size
        if count >= buffer:
            yield _leaving(held, count, size, rng)
            count -= size
    # What is left leaves in pieces of a group's size too: as one chunk, it would be the
    # whole buffer, in float32 four times over once decoded.
    order = rng.permutation(count)
    for start in range(0, count, max(size, 1)):
        chosen = order[start : start + size]
        yield held[0][chosen], held[1][chosen]


def _room(held: list[np.ndarray], count: int, size: int, like: tuple) -> list[np.ndarray]:
    """Buffers of `size` samples shaped as `like`'s, holding the first `count` of `held`."""
    grown = [np.empty((size, *a.shape[1:]), dtype=a.dtype) for a in like]
    for new, old in zip(grown, held, strict=False):
        new[:count] = old[:count]
    return grown


def _leaving(held: list[np.ndarray], count: int, size: int, rng: np.random.Generator) -> tuple:
    """`size` random samples of the first `count` held, copied out; the last `size` slots
    then move into the holes they leave, so that the first `count - size` are the rest."""
    chosen = rng.choice(count, size=size, replace=False)
    out = tuple(array[chosen] for array in held)
    tail = np.arange(count - size, count)
    holes = np.sort(chosen[chosen < count - size])
    movers = tail[~np.isin(tail, chosen)]
    for array in held:
        array[holes] = array[movers]
    return out


def streaming(data: Any) -> tuple[int, int]:
    """data.stream as (workers, buffer): its workers the cores where null."""
    stream = Stream(**(to_dict(data).get("stream") or {}))
    workers = stream.workers if stream.workers is not None else (os.cpu_count() or 1)
    return workers, stream.buffer


class ShardLoader:
    """Batches of a split prepared in shards, as data.arrays.ArrayLoader gives them from
    memory: `len()` steps an epoch, shuffled per epoch from a seed when asked."""

    def __init__(
        self,
        folder: Path,
        meta: dict,
        splits: tuple[str, ...],
        batch_size: int,
        stream: tuple[int, int],
        shuffle: bool = False,
        seed: int = 0,
    ) -> None:
        """`splits`: the splits whose shards it reads (train+val for a refit); `stream`:
        (workers, buffer), as data.stream sets them."""
        self.folder, self.meta = Path(folder), meta
        self.records = [record for name in splits for record in meta["shards"][name]]
        self.samples = sum(record["rows"] for record in self.records)
        self.batch_size = batch_size
        self.workers, self.buffer = stream
        self.shuffle, self.seed = shuffle, seed
        self.epoch = 0
        self._reading: Iterator | None = None

    def __len__(self) -> int:
        return -(-self.samples // self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        self.close()
        self._reading = self._epoch()
        return self._reading

    def _epoch(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """An epoch's batches, read from the first one asked for: Lightning asks for the
        iterator before its epoch starts, and the epoch (set by resume.EpochOrder) is
        known only then."""
        large_buffers_unpooled()  # before the reading processes start, which inherit it
        order = (self.shuffle, self.seed, self.epoch, self.buffer)
        self.epoch += 1
        chunks = ShardChunks(self.folder, self.records, self.meta, order)
        workers = min(self.workers, len(self.records))
        reader = torch.utils.data.DataLoader(
            chunks,
            batch_size=None,
            num_workers=workers,
            pin_memory=torch.cuda.is_available(),
            prefetch_factor=4 if workers else None,
            # Its own generator for the seed it draws as an epoch's reading starts: from
            # torch's global one, that draw would shift the training's random numbers
            # (dropout, augmentation) by when the reading starts.
            generator=torch.Generator().manual_seed(self.seed),
        )
        yield from _batches(_every_chunk(iter(reader), self.samples), self.batch_size)

    def close(self) -> None:
        """Stop the reading processes of an epoch left part way (Lightning's sanity check
        takes two validation batches): they would hold their memory until the next epoch."""
        if self._reading is not None:
            self._reading.close()  # its frame, holding the DataLoader's iterator, goes
            self._reading = None


# glibc's mallopt parameter: the size from which an allocation is mapped on its own.
_M_MMAP_THRESHOLD = -3
_UNPOOLED_BYTES = 4 << 20


def large_buffers_unpooled() -> None:
    """Buffers of 4 MiB and more (batches, chunks) each mapped from the system and handed
    back when freed. glibc raises that size to 32 MiB once such a buffer is freed, and
    then serves them from its heap, whose freed pieces it keeps: a streamed epoch's memory
    would grow with its length (measured: 1.2 against 0.9 GiB after 290 steps of 128x128
    images). Nothing to do where the C library is not glibc."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    libc.mallopt(_M_MMAP_THRESHOLD, _UNPOOLED_BYTES)


def _every_chunk(reading: Iterator, samples: int) -> Iterator:
    """The chunks of an epoch of `samples` samples, the reading processes let go as soon as
    the last has come: a training stops asking for batches at the epoch's length, and
    would leave them waiting, holding their memory, through its validation."""
    received = 0
    for chunk in reading:
        if not isinstance(chunk, Failed):
            received += len(chunk[1])
        if received >= samples:
            # Asking for the rest (nothing) ends the epoch's reading, and its processes.
            yield from [chunk, *reading]
            return
        yield chunk


def _batches(chunks, size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Chunks of any size cut and joined into batches of `size` (the last one shorter)."""
    held_x, held_y, count = [], [], 0
    for chunk in chunks:
        if isinstance(chunk, Failed):
            raise DataError(chunk.message)
        x, y = chunk
        held_x.append(x)
        held_y.append(y)
        count += len(y)
        if count < size:
            continue
        xs, ys = torch.cat(held_x), torch.cat(held_y)
        whole = count - count % size
        for start in range(0, whole, size):
            yield xs[start : start + size], ys[start : start + size]
        held_x, held_y, count = [xs[whole:]], [ys[whole:]], count - whole
    if count:
        yield torch.cat(held_x), torch.cat(held_y)


def read_whole(folder: Path, meta: dict, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Split `split` of data prepared in shards, read into memory in its stored order."""
    chunks = ShardChunks(folder, meta["shards"][split], meta, (False, 0, 0, 1))
    batches = list(_batches(chunks, meta["sizes"][split]))
    return torch.cat([x for x, _ in batches]), torch.cat([y for _, y in batches])
