"""k-fold cross-validation: the prepare stage numbers the training and validation rows
into folds once; a training with data.split.fold=i validates on fold i and trains on the
rest; a sweep over the folds reports their mean and spread on its parent run."""

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from dlpipe.config import checks
from dlpipe.config.schema.validate import validate
from dlpipe.data.arrays import in_fold, load_prepared
from dlpipe.data.prepare import prepare
from dlpipe.errors import ConfigError, DataError
from dlpipe.tracking.sweep import OVERRIDES_TAG, fold_spread, is_kfold


def write_table(path: Path, rows: int, classes: str = "abc") -> Path:
    """Two numeric features (the first the row number) and a label, classes in turn."""
    rng = np.random.default_rng(0)
    labels = [classes[i % len(classes)] for i in range(rows)]
    pd.DataFrame(
        {"f1": np.arange(rows, dtype=float), "f2": rng.normal(size=rows), "label": labels}
    ).to_csv(path, index=False)
    return path


def prepared(make_cfg, out: Path, *overrides: str):
    cfg = make_cfg("data=table", "data.target=label", *overrides)
    validate(cfg)
    meta = prepare(cfg.data, out)
    return cfg, meta, load_prepared(out)


def rows_of(x: torch.Tensor, meta: dict) -> list[int]:
    """The table rows (f1, the row number, unstandardised) of a split's samples."""
    mean, std = (np.ravel(meta["stats"][key])[0] for key in ("x_mean", "x_std"))
    return sorted(np.rint(x[:, 0].numpy() * std + mean).astype(int).tolist())


def test_prepare_numbers_training_and_validation_rows_into_stratified_folds(make_cfg, tmp_path):
    path = write_table(tmp_path / "t.csv", 90)
    _, plain, without = prepared(make_cfg, tmp_path / "plain", f"data.path={path}")
    _, meta, data = prepared(make_cfg, tmp_path / "k", f"data.path={path}", "data.split.folds=3")
    assert meta["split"]["folds"] == 3 and "fold" not in meta["data"]["split"]
    # The splits themselves are what they are without folds; only the numbering is added.
    assert meta["sizes"] == plain["sizes"] and without.folds == {}
    for name in ("train", "val", "test"):
        assert torch.equal(data.splits[name][0], without.splits[name][0])
    assert set(data.folds) == {"train", "val"}
    folds = torch.cat([data.folds["train"], data.folds["val"]]).numpy()
    labels = torch.cat([data.splits["train"][1], data.splits["val"][1]]).numpy()
    # 76 training and validation rows (25, 25, 26 of the classes): each fold a third of each.
    per_fold = np.array([np.bincount(labels[folds == fold], minlength=3) for fold in range(3)])
    assert per_fold.sum(axis=0).tolist() == [25, 25, 26]
    assert per_fold.min() == 8 and per_fold.max() == 9
    # The numbering is part of what was prepared: the content hash tells them apart.
    assert meta["hash"] != plain["hash"]
    _, again, _ = prepared(make_cfg, tmp_path / "again", f"data.path={path}", "data.split.folds=3")
    assert again["hash"] == meta["hash"]


def test_a_fold_validates_on_its_rows_and_trains_on_the_others(make_cfg, tmp_path):
    path = write_table(tmp_path / "t.csv", 60)
    _, meta, data = prepared(make_cfg, tmp_path / "k", f"data.path={path}", "data.split.folds=4")
    pool = rows_of(torch.cat([data.splits["train"][0], data.splits["val"][0]]), meta)
    validated = []
    for fold in range(4):
        chosen = in_fold(data, fold)
        train, val = (rows_of(chosen.splits[name][0], meta) for name in ("train", "val"))
        assert sorted(train + val) == pool and not set(train) & set(val)
        assert chosen.meta["sizes"] == {"train": len(train), "val": len(val), "test": 9}
        assert chosen.meta["split"]["fold"] == fold
        assert torch.equal(chosen.splits["test"][0], data.splits["test"][0])
        validated += val
    assert sorted(validated) == pool  # each row validates once
    assert in_fold(data, None) is data  # no fold: the splits as prepared


def test_regression_rows_are_folded_without_classes(make_cfg, tmp_path):
    path = write_table(tmp_path / "t.csv", 50)
    cfg = make_cfg(
        "data=table",
        f"data.path={path}",
        "data.target=f2",
        "data.task=regression",
        "data.split.folds=5",
    )
    validate(cfg)
    prepare(cfg.data, tmp_path / "k")
    data = load_prepared(tmp_path / "k")
    folds = torch.cat([data.folds["train"], data.folds["val"]])
    assert torch.bincount(folds).tolist() == [9, 9, 8, 8, 8]  # 42 rows: KFold, unstratified


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["data.split.fold=1"], r"data.split.fold=1 is set without data.split.folds: set"),
        (
            ["data.split.folds=3", "data.split.fold=3"],
            r"data.split.fold=3 is not a fold of data.split.folds=3: use 0 to 2",
        ),
        (["data.split.folds=1"], r"data.split.folds must be an integer >= 2 or null, got 1"),
    ],
)
def test_bad_fold_settings_are_named(make_cfg, overrides, message):
    cfg = make_cfg("data=table", "data.target=label", "data.path=t.csv", *overrides)
    with pytest.raises(ConfigError, match=message):
        validate(cfg)


def test_more_folds_than_a_class_has_rows_is_refused(make_cfg, tmp_path):
    # c has 5 rows, one of which the test split takes.
    labels = ["a", "b"] * 20 + ["c"] * 5
    table = pd.DataFrame({"f1": np.arange(45.0), "label": labels})
    table.to_csv(tmp_path / "t.csv", index=False)
    with pytest.raises(
        ConfigError, match=r"folds=5 exceeds the 4 training and validation rows of class 'c'"
    ):
        prepared(make_cfg, tmp_path / "k", f"data.path={tmp_path / 't.csv'}", "data.split.folds=5")
    assert not (tmp_path / "k").exists()


def test_forecasting_data_is_not_folded(make_cfg, tmp_path):
    cfg = make_cfg("data=sunspots", "+data.split.folds=3")
    validate(cfg)
    with pytest.raises(ConfigError, match=r"data.split.folds=3 cannot cross-validate forecasting"):
        prepare(cfg.data, tmp_path / "k")
    assert not (tmp_path / "k").exists()


def test_the_fold_is_no_setting_of_the_prepared_data_but_the_folds_are(make_cfg, tmp_path):
    path = write_table(tmp_path / "t.csv", 60)
    _, meta, _ = prepared(make_cfg, tmp_path / "k", f"data.path={path}", "data.split.folds=3")
    common = ("data=table", "data.target=label", f"data.path={path}")
    checks.check_prepared_matches(
        make_cfg(*common, "data.split.folds=3", "data.split.fold=2"), meta
    )
    with pytest.raises(ConfigError, match=r"data.split is .*'folds': 4.* but data/prepared"):
        checks.check_prepared_matches(make_cfg(*common, "data.split.folds=4"), meta)
    _, _, without = prepared(make_cfg, tmp_path / "plain", f"data.path={path}")
    with pytest.raises(ConfigError, match=r"made without data.split.folds: run the prepare"):
        in_fold(without, 1)


@pytest.mark.parametrize(
    ("fold", "message"),
    [
        (None, r"train.npz: it holds no folds, but meta.json says it was split into 3"),
        (np.zeros(3, dtype=np.int64), r"train.npz: it holds \(3,\) folds for \d+ samples"),
        ("bad", r"train.npz: fold 7 of sample 0 is not one of 0 to 2"),
    ],
)
def test_damaged_folds_are_named(make_cfg, tmp_path, fold, message):
    path = write_table(tmp_path / "t.csv", 60)
    _, _, data = prepared(make_cfg, tmp_path / "k", f"data.path={path}", "data.split.folds=3")
    x, y = (array.numpy() for array in data.splits["train"])
    if isinstance(fold, str):
        fold = np.full(len(y), 7)
    arrays = {"x": x, "y": y, **({} if fold is None else {"fold": fold})}
    np.savez(tmp_path / "k" / "train.npz", **arrays)
    with pytest.raises(DataError, match=message + r".*rerun the prepare stage"):
        load_prepared(tmp_path / "k")


def job(overrides: str, status: str = "FINISHED", **metrics: float) -> SimpleNamespace:
    return SimpleNamespace(
        info=SimpleNamespace(status=status),
        data=SimpleNamespace(
            tags={OVERRIDES_TAG: overrides}, params={"data.split.folds": "3"}, metrics=metrics
        ),
    )


def test_a_sweep_over_only_the_fold_is_a_cross_validation():
    folds = [job(f"data=table data.split.folds=3 data.split.fold={i}") for i in range(3)]
    assert is_kfold(folds)
    assert not is_kfold([*folds[:2], job("data=table data.split.folds=3 data.split.fold=2 x=1")])
    assert not is_kfold([job("model=mlp"), job("model=cnn")])
    assert not is_kfold([])


def test_folds_report_mean_and_spread_of_each_metric_they_all_log():
    jobs = [
        job("data.split.fold=0", **{"best/val/acc": 0.8, "val/loss": 0.4, "only": 1.0}),
        job("data.split.fold=1", **{"best/val/acc": 0.9, "val/loss": 0.2}),
        job("data.split.fold=2", "FAILED", **{"val/loss": 9.0}),
    ]
    spread = fold_spread(jobs)
    assert spread.keys() == {
        "best/val/acc/mean",
        "best/val/acc/std",
        "val/loss/mean",
        "val/loss/std",
    }
    assert spread["best/val/acc/mean"] == pytest.approx(0.85)
    assert spread["best/val/acc/std"] == pytest.approx(0.05)
    assert spread["val/loss/mean"] == pytest.approx(0.3)
