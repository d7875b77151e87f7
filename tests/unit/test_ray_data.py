"""Which validation sets Ray Train's workers read once, kept in the object store, and which
they read from their shards every epoch."""

from pathlib import Path

import pyarrow.parquet as pq

from dlpipe.cluster.ray_data import keeps_validation, split_bytes
from tests.unit.test_shards import SHARDED, prepared, write_images


def test_a_split_takes_its_samples_and_targets_bytes(make_cfg, tmp_path: Path):
    images = write_images(tmp_path / "images", per_class=10, size=(9, 7))
    meta = prepared(make_cfg, images, tmp_path / "shards", *SHARDED)
    rows = meta["sizes"]["val"]
    assert split_bytes(meta, "val") == rows * (3 * 9 * 7 + 8)  # uint8 pixels, int64 label
    # What the shards hold of it, read back as Ray Data reads them.
    stored = sum(
        pq.read_table(tmp_path / "shards" / record["file"]).nbytes
        for record in meta["shards"]["val"]
    )
    assert stored <= split_bytes(meta, "val") * 1.1


def test_a_validation_set_is_kept_up_to_a_quarter_of_the_smallest_store():
    store = 8e9
    assert keeps_validation(int(2e9), store)
    assert not keeps_validation(int(2e9) + 1, store)
    assert not keeps_validation(1, 0)  # no node with CPUs: nothing to keep it on
