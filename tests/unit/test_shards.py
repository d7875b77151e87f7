"""Data larger than memory: an image folder prepared in shards, streamed back in batches.

Small folders and tiny shards (data.shards.above_mb=0 forces them) stand in for large
data: what is tested is that the shards hold the same samples the in-memory path holds,
that streaming reads a bounded part of them at a time, and that its order is seeded.
"""

import multiprocessing
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dlpipe.config.schema.validate import validate
from dlpipe.data import shard_loader, shards
from dlpipe.data.arrays import load_prepared
from dlpipe.data.prepare import prepare
from dlpipe.data.shard_loader import ShardLoader
from dlpipe.errors import DataError
from dlpipe.evaluation.scoring import predicted
from dlpipe.tasks.kinds import Scoring

SHARDED = ("data.shards.above_mb=0", "data.shards.size_mb=0.002", "data.stream.workers=2")


def write_images(folder: Path, per_class: int = 30, size: tuple[int, int] = (9, 7)) -> Path:
    """Colour images of three classes, each a noisy shade of its own colour."""
    rng = np.random.default_rng(0)
    colours = {"red": (200, 40, 40), "green": (40, 200, 40), "blue": (40, 40, 200)}
    for name, colour in colours.items():
        (folder / name).mkdir(parents=True)
        for index in range(per_class):
            noise = rng.integers(-30, 30, size=(*size, 3))
            pixels = np.clip(np.array(colour) + noise, 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(folder / name / f"{index:03d}.png")
    return folder


def prepared(make_cfg, images: Path, out: Path, *overrides: str) -> dict:
    cfg = make_cfg("data=images", f"data.path={images}", *overrides)
    validate(cfg)
    return prepare(cfg.data, out)


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    return write_images(tmp_path_factory.mktemp("images") / "folder")


def test_shards_hold_what_the_in_memory_path_holds(make_cfg, images: Path, tmp_path: Path):
    in_memory = prepared(make_cfg, images, tmp_path / "arrays")
    sharded = prepared(make_cfg, images, tmp_path / "shards", *SHARDED)
    assert sharded["format"] == "shards" and "format" not in in_memory
    assert sharded["sizes"] == in_memory["sizes"] == {"train": 62, "val": 14, "test": 14}
    assert sharded["input_shape"] == in_memory["input_shape"] == [3, 9, 7]
    # The statistics of one streaming pass equal those over the whole training split.
    for key in ("x_mean", "x_std"):
        assert np.allclose(sharded["stats"][key], in_memory["stats"][key], atol=1e-6)
    # Several shards per split, each listed with its rows and digest.
    train = sharded["shards"]["train"]
    assert len(train) > 3 and sum(record["rows"] for record in train) == 62
    assert all(len(record["sha256"]) == 64 for record in train)
    assert not list((tmp_path / "shards").glob("*.npz"))
    # The same test samples, standardised alike, up to their order.
    arrays = load_prepared(tmp_path / "arrays").splits["test"]
    streamed = load_prepared(tmp_path / "shards").splits["test"]
    assert sorted(arrays[1].tolist()) == sorted(streamed[1].tolist())
    key = lambda x: torch.sort(x.flatten(1).sum(1)).values  # noqa: E731
    assert torch.allclose(key(arrays[0]), key(streamed[0]), atol=1e-4)


def batches(folder: Path, meta: dict, seed: int, epoch: int, workers: int = 2) -> list:
    loader = ShardLoader(folder, meta, ("train",), 8, (workers, 16), shuffle=True, seed=seed)
    loader.epoch = epoch
    return list(loader)


def test_streamed_batches_are_whole_and_seeded(make_cfg, images: Path, tmp_path: Path):
    meta = prepared(make_cfg, images, tmp_path, *SHARDED)
    first = batches(tmp_path, meta, seed=1, epoch=0)
    assert [len(y) for _, y in first] == [8] * 7 + [6]  # as many steps as in memory
    assert first[0][0].dtype == torch.float32 and first[0][0].shape[1:] == (3, 9, 7)
    labels = torch.cat([y for _, y in first])
    whole = shard_loader.read_whole(tmp_path, meta, "train")[1]
    assert sorted(labels.tolist()) == sorted(whole.tolist())
    again = batches(tmp_path, meta, seed=1, epoch=0)
    assert all(torch.equal(a[0], b[0]) for a, b in zip(first, again, strict=True))
    other_epoch = torch.cat([y for _, y in batches(tmp_path, meta, seed=1, epoch=1)])
    other_seed = torch.cat([y for _, y in batches(tmp_path, meta, seed=2, epoch=0)])
    assert not torch.equal(labels, other_epoch) and not torch.equal(labels, other_seed)
    # Every training sample once an epoch.
    sums = torch.sort(torch.cat([x for x, _ in first]).flatten(1).sum(1)).values
    again_sums = torch.cat([x for x, _ in batches(tmp_path, meta, seed=3, epoch=5, workers=0)])
    assert torch.allclose(sums, torch.sort(again_sums.flatten(1).sum(1)).values, atol=1e-4)


def test_streaming_reads_a_row_group_at_a_time(make_cfg, images, tmp_path, monkeypatch):
    """However many shards there are, a reader holds at most its buffer and one group."""
    meta = prepared(make_cfg, images, tmp_path, *SHARDED)
    held, reading = [], shards.read_groups

    def counted(folder, record, layout):
        for x, y in reading(folder, record, layout):
            held.append(len(y))
            yield x, y

    monkeypatch.setattr(shard_loader, "read_groups", counted)
    loader = ShardLoader(tmp_path, meta, ("train",), 8, (0, 16), shuffle=True, seed=0)
    first = next(iter(loader))
    assert len(first[1]) == 8
    # One batch needed the groups that filled the buffer, not the split's 62 samples.
    assert sum(held) <= 16 + max(held) < 62


def test_a_shuffle_buffer_sends_no_more_than_a_group_at_once():
    """The buffer empties at the epoch's end in group-sized chunks too: one chunk of the
    whole buffer, decoded to float32, would be four times the buffer in memory at once."""
    groups = [(np.full((10, 2), g, dtype=np.uint8), np.full(10, g)) for g in range(12)]
    rng = np.random.default_rng(0)
    chunks = list(shard_loader._shuffled(iter(groups), 50, rng))
    assert max(len(y) for _, y in chunks) == 10
    assert sorted(np.concatenate([y for _, y in chunks]).tolist()) == sorted(
        np.concatenate([y for _, y in groups]).tolist()
    )


def test_readers_end_with_the_epoch_and_when_left_part_way(make_cfg, images, tmp_path):
    """A training takes an epoch's len() batches and asks no more (Lightning's fit loop),
    or two of them (its sanity check): neither leaves reading processes behind."""
    meta = prepared(make_cfg, images, tmp_path, *SHARDED)
    loader = ShardLoader(tmp_path, meta, ("train",), 8, (2, 16), shuffle=True, seed=0)
    epoch = iter(loader)
    for _ in range(len(loader)):
        next(epoch)
    assert multiprocessing.active_children() == []
    epoch = iter(loader)
    next(epoch)
    assert len(multiprocessing.active_children()) == 2
    loader.close()
    assert multiprocessing.active_children() == []


def test_the_test_split_is_scored_a_batch_at_a_time_from_its_shards(make_cfg, images, tmp_path):
    """Evaluate leaves a test split prepared in shards there and streams it: the model's
    outputs and the targets come out as from the split read whole."""
    prepared(make_cfg, images, tmp_path, *SHARDED)
    streamed = load_prepared(tmp_path, ("test",), stream=("test",))
    assert "test" not in streamed.splits
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 9 * 7, 3))

    def scored(data):
        return predicted(Scoring(model, None, data, tmp_path, 8, 0, 0, None, stream=(2, 16)))

    (outputs, targets), (whole, whole_targets) = scored(streamed), scored(load_prepared(tmp_path))
    assert torch.equal(targets, whole_targets) and len(targets) == 14
    assert torch.allclose(outputs, whole, atol=1e-5)


def test_a_damaged_shard_is_named(make_cfg, images: Path, tmp_path: Path):
    meta = prepared(make_cfg, images, tmp_path, *SHARDED)
    record = meta["shards"]["train"][2]
    (tmp_path / record["file"]).write_bytes(b"not parquet")
    loader = ShardLoader(tmp_path, meta, ("train",), 8, (0, 16), shuffle=False)
    with pytest.raises(DataError, match=f"shard {tmp_path / record['file']} cannot be read"):
        list(loader)


def test_a_corrupt_image_names_the_file_and_its_shard_and_keeps_what_was(
    make_cfg, images: Path, tmp_path: Path
):
    out = tmp_path / "out"
    before = prepared(make_cfg, images, out, *SHARDED)
    broken = tmp_path / "broken"
    write_images(broken, per_class=12)
    # Its header reads (size and mode are known), its pixels do not: found while sharding.
    damaged = broken / "green" / "005.png"
    damaged.write_bytes(damaged.read_bytes()[:60])
    with pytest.raises(DataError, match=r"image .*green/005.png cannot be read.*\(shard \w+/\d+"):
        prepared(make_cfg, broken, out, *SHARDED)
    # Nothing half-written: the previous shards and meta.json stand, no staging folder left.
    assert load_prepared(out).meta["hash"] == before["hash"]
    assert not list(out.glob(".*"))


def test_arrays_replace_shards_and_shards_replace_arrays(make_cfg, images, tmp_path):
    prepared(make_cfg, images, tmp_path, *SHARDED)
    prepared(make_cfg, images, tmp_path)
    assert not (tmp_path / shards.FOLDER).exists()
    assert sorted(p.name for p in tmp_path.glob("*.npz")) == ["test.npz", "train.npz", "val.npz"]
