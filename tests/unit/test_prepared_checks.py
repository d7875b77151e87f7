"""Prepared data is checked as it loads: each kind of damage is named with its file."""

import json
from pathlib import Path

import numpy as np
import pytest

from dlpipe.data.arrays import load_prepared
from dlpipe.errors import DataError

RERUN = r"rerun the prepare stage: `dvc repro prepare`"


def write_prepared(folder: Path, meta: dict, splits: dict[str, tuple]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, (x, y) in splits.items():
        np.savez(folder / f"{name}.npz", x=x, y=y)
    (folder / "meta.json").write_text(json.dumps(meta))
    return folder


def images(count: int) -> np.ndarray:
    return np.random.default_rng(0).normal(size=(count, 1, 2, 2)).astype(np.float32)


def classes_meta() -> dict:
    return {
        "task": "classification",
        "input_shape": [1, 2, 2],
        "num_outputs": 3,
        "classes": ["a", "b", "c"],
        "sizes": {"train": 6, "val": 6, "test": 6},
        "hash": "0",
    }


def good_splits() -> dict[str, tuple]:
    labels = [0, 1, 2, 0, 1, 2]
    return {name: (images(6), np.array(labels)) for name in ("train", "val", "test")}


def test_good_prepared_data_loads(tmp_path: Path):
    data = load_prepared(write_prepared(tmp_path, classes_meta(), good_splits()))
    assert data.splits["val"][0].shape == (6, 1, 2, 2) and data.meta["num_outputs"] == 3


def with_nan(splits):
    x, y = splits["train"]
    x[4, 0, 1, 1] = np.nan
    return {**splits, "train": (x, y)}


def with_inf_target(splits):
    return {**splits, "test": (splits["test"][0], np.full((6,), np.inf))}


def with_label_out_of_range(splits):
    x, y = splits["val"]
    y[3] = 7
    return {**splits, "val": (x, y)}


def with_negative_label(splits):
    x, y = splits["val"]
    y[2] = -1
    return {**splits, "val": (x, y)}


def with_other_feature_count(splits):
    return {**splits, "val": (images(6)[..., :1], splits["val"][1])}


def with_empty_split(splits):
    return {**splits, "train": (images(0), np.zeros(0, dtype=np.int64))}


def with_unequal_lengths(splits):
    return {**splits, "train": (images(5), splits["train"][1])}


def with_target_rows(splits):
    return {**splits, "test": (images(6), np.zeros((6, 2), dtype=np.int64))}


@pytest.mark.parametrize(
    "damage,message",
    [
        (with_nan, r"train.npz: x of sample 4 holds NaN or inf"),
        (with_inf_target, r"test.npz: y of sample 0 holds NaN or inf"),
        (with_label_out_of_range, r"val.npz: label 7 of sample 3 is not a class index \(0 to 2"),
        (with_negative_label, r"val.npz: label -1 of sample 2 is not a class index"),
        (
            with_other_feature_count,
            r"val.npz: samples are shaped \(1, 2, 1\), but meta.json's input_shape is \[1, 2, 2\]",
        ),
        (with_empty_split, r"train.npz: it holds no samples \(x has 0, y 0\)"),
        (with_unequal_lengths, r"train.npz: x holds 5 samples and y 6; they must match"),
        (
            with_target_rows,
            r"test.npz: targets are shaped \(2,\), but classification needs one class",
        ),
    ],
)
def test_damaged_split_is_named_with_its_file_and_the_fix(tmp_path: Path, damage, message):
    folder = write_prepared(tmp_path, classes_meta(), damage(good_splits()))
    with pytest.raises(DataError, match=rf"prepared data file {tmp_path}/{message}.*: {RERUN}"):
        load_prepared(folder)


def test_only_the_requested_splits_are_checked(tmp_path: Path):
    folder = write_prepared(tmp_path, classes_meta(), with_inf_target(good_splits()))
    assert set(load_prepared(folder, ("train", "val")).splits) == {"train", "val"}


def test_float_labels_are_refused_for_classification(tmp_path: Path):
    splits = good_splits()
    splits["val"] = (splits["val"][0], splits["val"][1].astype(np.float32))
    with pytest.raises(DataError, match=r"val.npz: y holds torch.float32 values, but class"):
        load_prepared(write_prepared(tmp_path, classes_meta(), splits))


def multitask_meta() -> dict:
    heads = [
        {"name": "size", "task": "regression", "classes": None, "columns": 2, "outputs": 2},
        {
            "name": "kind",
            "task": "classification",
            "classes": ["a", "b"],
            "columns": 1,
            "outputs": 1,
        },
    ]
    return {**classes_meta(), "task": "multitask", "num_outputs": 3, "heads": heads}


def test_a_multitask_class_head_is_checked_in_its_own_column(tmp_path: Path):
    # Columns: size (2 values, any number), then kind (a class index: 0 or 1).
    y = np.array([[5.5, -3.0, 0], [9.0, 2.0, 1], [0.5, 7.0, 1]], dtype=np.float32)
    splits = {"train": (images(3), y)}
    assert load_prepared(write_prepared(tmp_path / "good", multitask_meta(), splits), ("train",))
    for label, shown in ((2, "2"), (0.5, "0.5")):
        bad = y.copy()
        bad[1, 2] = label
        folder = write_prepared(tmp_path / shown, multitask_meta(), {"train": (images(3), bad)})
        with pytest.raises(
            DataError, match=rf"train.npz: head 'kind': label {shown} of sample 1 is not a class"
        ):
            load_prepared(folder, ("train",))


def test_unreadable_or_incomplete_files_are_named(tmp_path: Path):
    folder = write_prepared(tmp_path, classes_meta(), good_splits())
    train = (folder / "train.npz").read_bytes()
    (folder / "train.npz").write_bytes(train[: len(train) // 2])
    with pytest.raises(DataError, match=rf"train.npz is unreadable \(File is not a zip.*{RERUN}"):
        load_prepared(folder)
    (folder / "meta.json").write_text('{"task": "classif')
    with pytest.raises(DataError, match=rf"meta.json is unreadable \(.*{RERUN}"):
        load_prepared(folder)
    (folder / "meta.json").write_text('{"task": "classification"}')
    with pytest.raises(
        DataError, match=r"meta.json lacks input_shape, num_outputs, classes, sizes, hash"
    ):
        load_prepared(folder)
