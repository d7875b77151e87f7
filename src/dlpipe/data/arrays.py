"""Prepared data in memory, and batches cut from it by tensor slicing.

Slicing whole tensors avoids the per-sample Dataset + collate path, which dominates
step time for small models.
"""

import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from dlpipe import files
from dlpipe.data.checks import RERUN_PREPARE, check_meta, check_split
from dlpipe.data.prepare import SPLITS
from dlpipe.errors import DataError

_RUN_PREPARE = "run the prepare stage first: `dvc repro prepare` or `python pipelines/prepare.py`"


@dataclass(frozen=True)
class PreparedData:
    meta: dict
    splits: dict[str, tuple[torch.Tensor, torch.Tensor]]


def load_prepared(directory: Path, names: tuple[str, ...] = SPLITS) -> PreparedData:
    """Load meta.json and the requested splits, each checked against meta.json.

    Raises:
        DataError: naming a missing, unreadable or damaged file and how to make it anew
            (see data.checks).
    """
    directory = Path(directory)
    meta = _load_meta(directory / "meta.json")
    splits = {}
    for name in names:
        path = directory / f"{name}.npz"
        splits[name] = _load_split(path)
        check_split(path, *splits[name], meta)
    return PreparedData(meta=meta, splits=splits)


def _load_meta(path: Path) -> dict:
    if not path.exists():
        raise DataError(f"prepared data file {path} is missing: {_RUN_PREPARE}")
    try:
        meta = files.read_json(path)
    except (OSError, ValueError) as exc:
        raise DataError(
            f"prepared data file {path} is unreadable ({exc}): {RERUN_PREPARE}"
        ) from exc
    check_meta(meta, path)
    return meta


def _load_split(path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    if not path.exists():
        raise DataError(f"prepared data file {path} is missing: {_RUN_PREPARE}")
    try:
        with np.load(path) as arrays:
            return torch.from_numpy(arrays["x"]), torch.from_numpy(arrays["y"])
    # A truncated file is no zip archive (BadZipFile) or ends early (EOFError).
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(
            f"prepared data file {path} is unreadable ({exc}): {RERUN_PREPARE}"
        ) from exc


class ArrayLoader:
    """Iterate (x, y) batches of in-memory tensors; shuffled per epoch from a seed when asked.

    Epoch k uses the permutation drawn from `seed + k`, so batch order does not depend on
    how many loaders or random draws came before. With `shard=(rank, count)`, one of
    `count` data-parallel workers gets every count-th sample of that permutation; shards
    are padded from the start to one length, so that every worker takes as many steps.
    """

    def __init__(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        batch_size: int,
        shuffle: bool = False,
        seed: int = 0,
        shard: tuple[int, int] = (0, 1),
    ):
        self.x, self.y = x, y
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.rank, self.shards = shard
        self.epoch = 0

    def _shard_size(self) -> int:
        return -(-len(self.y) // self.shards)

    def __len__(self) -> int:
        return -(-self._shard_size() // self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = self._order()
        self.epoch += 1
        x, y = (self.x, self.y) if order is None else (self.x[order], self.y[order])
        for start in range(0, len(y), self.batch_size):
            yield x[start : start + self.batch_size], y[start : start + self.batch_size]

    def _order(self) -> torch.Tensor | None:
        """This epoch's sample indices for this shard; None: all samples, in order."""
        if not self.shuffle and self.shards == 1:
            return None  # no copy of the data
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed + self.epoch)
            order = torch.randperm(len(self.y), generator=generator)
        else:
            order = torch.arange(len(self.y))
        padded = order.repeat(2)[: self._shard_size() * self.shards]
        return padded[self.rank :: self.shards]
