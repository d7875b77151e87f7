"""Prepared data in memory, and batches cut from it by tensor slicing.

Slicing whole tensors avoids the per-sample Dataset + collate path, which dominates
step time for small models.
"""

import dataclasses
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from dlpipe import files
from dlpipe.data.checks import RERUN_PREPARE, check_folds, check_meta, check_split
from dlpipe.data.shard_loader import ShardLoader, read_whole
from dlpipe.data.splitting import SPLITS
from dlpipe.errors import ConfigError, DataError

_RUN_PREPARE = "run the prepare stage first: `dvc repro prepare` or `python pipelines/prepare.py`"


@dataclass(frozen=True)
class PreparedData:
    meta: dict
    splits: dict[str, tuple[torch.Tensor, torch.Tensor]]
    # Prepared with data.split.folds: each training and validation row's fold.
    folds: dict[str, torch.Tensor] = field(default_factory=dict)
    # Prepared in shards: the prepared folder, which meta["shards"] lists them in.
    folder: Path | None = None

    def streamed(self, name: str) -> bool:
        """Whether split `name` is left in its shards, to be streamed (see shard_loader)."""
        return self.folder is not None and name not in self.splits


def load_prepared(
    directory: Path, names: tuple[str, ...] = SPLITS, stream: tuple[str, ...] = ()
) -> PreparedData:
    """Load meta.json and the requested splits, each checked against meta.json. Data
    prepared in shards: the splits in `stream` are left in them (their files checked),
    the others read whole.

    Raises:
        DataError: naming a missing, unreadable or damaged file and how to make it anew
            (see data.checks).
    """
    directory = Path(directory)
    meta = _load_meta(directory / "meta.json")
    if meta.get("format") == "shards":
        return _load_sharded(directory, meta, names, stream)
    splits, folds = {}, {}
    for name in names:
        path = directory / f"{name}.npz"
        x, y, fold = _load_split(path)
        splits[name] = (x, y)
        check_split(path, *splits[name], meta)
        if "folds" in meta.get("split", {}) and name != "test":
            check_folds(path, fold, len(splits[name][1]), meta["split"]["folds"])
            folds[name] = fold
    return PreparedData(meta=meta, splits=splits, folds=folds)


def _load_sharded(
    directory: Path, meta: dict, names: tuple[str, ...], stream: tuple[str, ...]
) -> PreparedData:
    splits = {}
    for name in names:
        records = meta["shards"].get(name, [])
        for record in records:
            if not (directory / record["file"]).is_file():
                raise DataError(
                    f"prepared data file {directory / record['file']} is missing: {RERUN_PREPARE}"
                )
        if name not in stream:
            x, y = read_whole(directory, meta, name)
            check_split(directory / "shards" / name, x, y, meta)
            splits[name] = (x, y)
    return PreparedData(meta=meta, splits=splits, folder=directory)


def in_fold(data: PreparedData, fold: int | None) -> PreparedData:
    """The training and validation splits of k-fold cross-validation's fold `fold`: the
    rows of that fold validate, the other training and validation rows train. Unchanged
    where `fold` is None."""
    if fold is None:
        return data
    folds = data.meta.get("split", {}).get("folds")
    if folds is None or set(data.folds) != {"train", "val"}:
        raise ConfigError(
            f"data.split.fold={fold} is set, but data/prepared was made without "
            "data.split.folds: run the prepare stage with data.split.folds=k"
        )
    (x_train, y_train), (x_val, y_val) = data.splits["train"], data.splits["val"]
    x, y = torch.cat([x_train, x_val]), torch.cat([y_train, y_val])
    chosen = torch.cat([data.folds["train"], data.folds["val"]]) == fold
    splits = {**data.splits, "train": (x[~chosen], y[~chosen]), "val": (x[chosen], y[chosen])}
    sizes = {**data.meta["sizes"], "train": int((~chosen).sum()), "val": int(chosen.sum())}
    meta = {**data.meta, "sizes": sizes, "split": {**data.meta["split"], "fold": fold}}
    return dataclasses.replace(data, meta=meta, splits=splits)


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


def _load_split(path: Path) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """A split's inputs, targets and, where it has them, its rows' folds."""
    if not path.exists():
        raise DataError(f"prepared data file {path} is missing: {_RUN_PREPARE}")
    try:
        with np.load(path) as arrays:
            fold = torch.from_numpy(arrays["fold"]) if "fold" in arrays.files else None
            return torch.from_numpy(arrays["x"]), torch.from_numpy(arrays["y"]), fold
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

    @property
    def samples(self) -> int:
        return len(self.y)

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


# What a training reads its batches from: memory, or the shards of data prepared in them.
Loader = ArrayLoader | ShardLoader
