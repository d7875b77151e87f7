"""The prepare stage: split (stratified, seeded), normalise with train-only statistics, write.

Layout written to the output directory:
    train.npz, val.npz, test.npz   arrays `x` (float32) and `y` (int64)
    meta.json                      shapes, classes, statistics and a content hash
"""

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.model_selection import train_test_split

from dlpipe import files
from dlpipe.data.sources import RawData, load_source
from dlpipe.errors import ConfigError

SPLITS = ("train", "val", "test")


def split(raw: RawData, val: float, test: float, seed: int) -> dict[str, tuple]:
    """Stratified train/val/test split; `val` and `test` are fractions of the whole set."""
    try:
        x_rest, x_test, y_rest, y_test = train_test_split(
            raw.x, raw.y, test_size=test, stratify=raw.y, random_state=seed
        )
        x_train, x_val, y_train, y_val = train_test_split(
            x_rest, y_rest, test_size=val / (1 - test), stratify=y_rest, random_state=seed
        )
    except ValueError as exc:  # a split too small to hold every class once
        raise ConfigError(
            f"data.split (val={val}, test={test}) cannot be stratified over {len(raw.y)} samples "
            f"of {len(set(raw.y.tolist()))} classes: raise the fractions ({exc})"
        ) from exc
    return {"train": (x_train, y_train), "val": (x_val, y_val), "test": (x_test, y_test)}


def normalise(splits: dict[str, tuple]) -> tuple[dict[str, tuple], dict[str, float]]:
    """Scale every split by the mean and standard deviation of the training split only."""
    x_train = splits["train"][0]
    mean, std = float(x_train.mean()), float(x_train.std()) or 1.0
    scaled = {name: (((x - mean) / std).astype(np.float32), y) for name, (x, y) in splits.items()}
    return scaled, {"mean": mean, "std": std}


def content_hash(splits: dict[str, tuple]) -> str:
    digest = hashlib.sha256()
    for name in SPLITS:
        for array in splits[name]:
            digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


def prepare(data_cfg: Any, out_dir: Path) -> dict:
    """Prepare the configured data set into `out_dir`; return its meta data."""
    raw = load_source(data_cfg.name)
    cut = data_cfg.split
    splits, stats = normalise(split(raw, cut.val, cut.test, cut.seed))
    meta = {
        "name": data_cfg.name,
        "split": {"val": cut.val, "test": cut.test, "seed": cut.seed},
        "task": "classification",
        "input_shape": list(raw.x.shape[1:]),
        "classes": raw.classes,
        "num_classes": len(raw.classes),
        "sizes": {name: len(splits[name][1]) for name in SPLITS},
        "stats": stats,
        "hash": content_hash(splits),
    }
    for name in SPLITS:
        x, y = splits[name]
        with files.atomic_path(out_dir / f"{name}.npz") as tmp, open(tmp, "wb") as handle:
            np.savez(handle, x=x, y=y)
    files.write_json(out_dir / "meta.json", meta)
    return meta
