"""Data prepared in shards, read by Ray Train's workers through Ray Data.

The driver makes Ray Datasets that name the shard files (`ray.data.read_parquet`):
nothing of the data passes through its memory or the object store from it. Ray Train
splits the training set among the workers in equal parts (`streaming_split`, so every
worker takes as many steps); each worker reads the validation set whole, as it does
in-memory data. The workers read the files themselves: every node must reach the
prepared folder at the same path (a shared file system), or the data must sit in
storage that every node reads.

Every reading of a Ray Dataset is an execution of its own (a few seconds of tasks even
for a small split), and each worker reads the validation set every epoch and once more
for Lightning's sanity check. A validation set that fits easily in a node's object store
is therefore read once, before training, and kept there.
"""

import logging
import math
from collections.abc import Iterator
from pathlib import Path

import torch

from dlpipe.data.shard_loader import Decoder
from dlpipe.data.shards import Layout
from dlpipe.errors import ConfigError

SPLIT = "train"
# The share of a node's object store a validation set may take to be kept there: each node
# with a worker holds a copy, beside the training's own objects.
KEPT_SHARE = 0.25

log = logging.getLogger(__name__)


def datasets(folder: Path, meta: dict) -> dict:
    """The training shards as a Ray Dataset read lazily where they are; the validation
    shards likewise, or read once and kept in the object store where small (see
    keeps_validation)."""
    import ray.data

    found = {
        name: ray.data.read_parquet(
            [str(Path(folder).resolve() / record["file"]) for record in meta["shards"][name]],
            columns=["x", "y"],
        )
        for name in ("train", "val")
    }
    for dataset in found.values():
        # Redrawn many times a second into the training's log, which is seldom a terminal;
        # each epoch's line says how it went.
        dataset.context.enable_progress_bars = False
    size = split_bytes(meta, "val")
    if keeps_validation(size, _smallest_store()):
        log.info("validation set (%.1f MB) read once and kept in Ray's object store", size / 1e6)
        found["val"] = found["val"].materialize()
    return found


def split_bytes(meta: dict, split: str) -> int:
    """The bytes a split's samples and targets take in memory, as the shards store them."""
    layout = Layout.of(meta["shards"]["layout"])
    targets = 8 * math.prod(layout.y_shape or (1,))  # int64 labels or float64 values at most
    return meta["sizes"][split] * (layout.sample_bytes + targets)


def keeps_validation(size: int, store: float) -> bool:
    """Whether a validation set of `size` bytes is kept in an object store of `store`
    bytes (the smallest of the nodes that run workers) rather than read every epoch."""
    return size <= KEPT_SHARE * store


def _smallest_store() -> float:
    """The object store memory of the smallest node with CPUs for workers (0: none)."""
    import ray

    stores = [
        node["Resources"].get("object_store_memory", 0)
        for node in ray.nodes()
        if node["Alive"] and node["Resources"].get("CPU", 0) > 0
    ]
    return min(stores, default=0)


def check_room_to_read(cluster) -> None:
    """Ray Data reads with the CPUs the training workers leave free (Ray Train keeps its own
    out of Ray Data's budget): with none left, the reading would wait forever.

    Raises:
        ConfigError: the workers reserve every CPU of the cluster, naming the fix.
    """
    import ray

    total = ray.cluster_resources().get("CPU", 0)
    taken = cluster.num_workers * cluster.resources_per_worker.get("CPU", 1)
    if total - taken < 1:
        raise ConfigError(
            f"cluster.num_workers={cluster.num_workers} workers of "
            f"{cluster.resources_per_worker.get('CPU', 1)} CPU take {taken:g} of the cluster's "
            f"{total:g} CPUs, leaving none for Ray Data to read the shards with: lower "
            "cluster.num_workers or cluster.resources_per_worker.CPU, or give the cluster "
            "more CPUs (`ray start --num-cpus`)"
        )


def data_config():
    """Only the training set is split among the workers."""
    from ray.train import DataConfig

    return DataConfig(datasets_to_split=[SPLIT])


class RayShardLoader:
    """A worker's batches of one dataset: its part of the training set, shuffled per
    epoch in a buffer seeded by the seed, the epoch and the worker's rank; or the whole
    validation set in order."""

    def __init__(self, name: str, meta: dict, batch_size: int, context: tuple, seed=None) -> None:
        """`context`: (rank, workers, buffer); `seed`: shuffle from it (None: in order)."""
        import ray.train

        self.shard = ray.train.get_dataset_shard(name)
        self.decoder = Decoder(meta)
        self.rank, workers, self.buffer = context
        rows = meta["sizes"][name]
        # An equal split gives each worker the same whole share, the rest left out.
        self.rows = rows // workers if name == SPLIT else rows
        self.batch_size, self.seed = batch_size, seed
        self.epoch = 0

    def __len__(self) -> int:
        return -(-self.rows // self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        shuffle = {}
        if self.seed is not None:
            seed = (self.seed * 1_000_003 + self.epoch) * 1_009 + self.rank
            shuffle = {"local_shuffle_buffer_size": self.buffer, "local_shuffle_seed": seed}
        self.epoch += 1
        batches = self.shard.iter_batches(
            batch_size=self.batch_size, batch_format="pyarrow", **shuffle
        )
        yield from (self.decoder.table(table) for table in batches)
