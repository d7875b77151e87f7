"""The prepare stage: seeded splits (stratified, random or by time), train-only statistics."""

from pathlib import Path

import numpy as np
import pytest

from dlpipe.config.checks import to_dict
from dlpipe.data.arrays import ArrayLoader, load_prepared
from dlpipe.data.prepare import prepare
from dlpipe.data.sources import load_source
from dlpipe.data.splitting import split
from dlpipe.errors import ConfigError, DataError


@pytest.fixture
def prepared(make_cfg, tmp_path: Path):
    cfg = make_cfg()
    return prepare(cfg.data, tmp_path), tmp_path


def test_writes_splits_and_meta_without_leftovers(prepared):
    meta, folder = prepared
    assert sorted(p.name for p in folder.iterdir()) == [
        "meta.json",
        "test.npz",
        "train.npz",
        "val.npz",
    ]
    assert meta["sizes"] == {"train": 1257, "val": 270, "test": 270}
    assert meta["input_shape"] == [1, 8, 8] and meta["num_outputs"] == 10
    assert meta["task"] == "classification" and meta["classes"] == [str(d) for d in range(10)]
    # The source's own facts travel with the data: its `_target_`, and its pixels' range.
    assert meta["source"]["_target_"] == "dlpipe.data.digits.digits"
    assert meta["pixel_range"] == 16.0


def test_split_is_stratified_and_disjoint(prepared):
    _, folder = prepared
    data = load_prepared(folder)
    shares = {
        name: np.bincount(y.numpy(), minlength=10) / len(y) for name, (_, y) in data.splits.items()
    }
    assert np.abs(shares["train"] - shares["test"]).max() < 0.02
    rows = {name: {x.numpy().tobytes() for x in xs} for name, (xs, _) in data.splits.items()}
    # digits holds a few duplicate images; a split that leaked would share hundreds.
    assert len(rows["train"] & rows["test"]) < 5


def test_normalised_with_train_statistics_only(make_cfg, prepared):
    meta, folder = prepared
    x_train = load_prepared(folder).splits["train"][0]
    assert abs(float(x_train.mean())) < 1e-4 and abs(float(x_train.std()) - 1) < 1e-3
    raw = load_source(to_dict(make_cfg().data))
    cut = make_cfg().data.split
    raw_train = split(raw, cut.val, cut.test, cut.seed)["train"][0]
    mean, std = (np.ravel(meta["stats"][key])[0] for key in ("x_mean", "x_std"))
    assert mean == pytest.approx(float(raw_train.mean()))
    assert std == pytest.approx(float(raw_train.std()))
    # Statistics over all the data (test included) would differ: the test split would leak.
    assert mean != pytest.approx(float(raw.x.mean()), abs=1e-4)


def test_same_seed_same_hash_other_seed_other_hash(make_cfg, tmp_path: Path):
    first = prepare(make_cfg().data, tmp_path / "a")["hash"]
    again = prepare(make_cfg().data, tmp_path / "b")["hash"]
    other = prepare(make_cfg("data.split.seed=1").data, tmp_path / "c")["hash"]
    assert first == again != other


def test_missing_prepared_file_names_it_and_the_fix(prepared):
    _, folder = prepared
    (folder / "val.npz").unlink()
    with pytest.raises(DataError, match=r"val.npz is missing: run the prepare stage first"):
        load_prepared(folder)


def test_loader_covers_every_sample_once_in_seeded_order(prepared):
    _, folder = prepared
    x, y = load_prepared(folder).splits["val"]
    loader = ArrayLoader(x, y, batch_size=64, shuffle=True, seed=7)
    epochs = [[batch_y for _, batch_y in loader] for _ in range(2)]
    assert len(loader) == 5 and [len(b) for b in epochs[0]] == [64, 64, 64, 64, 14]
    first = np.concatenate([b.numpy() for b in epochs[0]])
    assert sorted(first) == sorted(y.numpy()) and not np.array_equal(first, y.numpy())
    replay = ArrayLoader(x, y, batch_size=64, shuffle=True, seed=7)
    assert np.array_equal(np.concatenate([b.numpy() for _, b in replay]), first)
    assert not np.array_equal(np.concatenate([b.numpy() for b in epochs[1]]), first)


def test_split_too_small_for_every_class_says_what_to_change(make_cfg, tmp_path: Path):
    with pytest.raises(ConfigError, match=r"cannot split 1797 samples of 10 classes.* raise"):
        prepare(make_cfg("data.split.test=0.001").data, tmp_path)
    assert not list(tmp_path.iterdir())


def test_regression_targets_are_standardised_and_kept_apart(make_cfg, tmp_path: Path):
    meta = prepare(make_cfg("data=linear", "data.normalise=true").data, tmp_path)
    assert meta["task"] == "regression" and meta["num_outputs"] == 1 and meta["classes"] is None
    y_train = load_prepared(tmp_path).splits["train"][1]
    assert y_train.dtype.is_floating_point and y_train.shape[1] == 1
    assert abs(float(y_train.mean())) < 1e-4 and abs(float(y_train.std()) - 1) < 0.01


def test_linear_kept_in_its_units_without_normalising(make_cfg, tmp_path: Path):
    meta = prepare(make_cfg("data=linear").data, tmp_path)
    assert meta["stats"] == {}
    x, y = load_prepared(tmp_path).splits["train"]
    residual = y[:, 0] - (3 * x[:, 0] + 1)
    assert float(residual.abs().max()) < 0.5  # noise of 0.1 around the line


def test_forecasting_is_split_by_time(make_cfg, tmp_path: Path):
    meta = prepare(make_cfg("data=sunspots", "data.window=12").data, tmp_path)
    assert meta["task"] == "forecasting" and meta["input_shape"] == [12, 1]
    splits = load_prepared(tmp_path).splits
    # Consecutive windows: each split goes on where the one before stopped, one step later.
    for before, after in (("train", "val"), ("val", "test")):
        last_window, next_window = splits[before][0][-1, :, 0], splits[after][0][0, :, 0]
        assert np.allclose(last_window[1:].numpy(), next_window[:-1].numpy())
    # The target is the value right after the window, on the same scale as the inputs.
    x, y = splits["train"]
    assert np.allclose(x[1:, -1, 0].numpy(), y[:-1, 0].numpy(), atol=1e-6)


def test_changed_data_settings_are_named_against_the_prepared_data(make_cfg, tmp_path: Path):
    from dlpipe.config import checks as config

    meta = prepare(make_cfg("data=sunspots").data, tmp_path)
    config.check_prepared_matches(make_cfg("data=sunspots", "data.batch_size=4"), meta)
    with pytest.raises(ConfigError, match=r"data\.window is 12 but data/prepared was made with 24"):
        config.check_prepared_matches(make_cfg("data=sunspots", "data.window=12"), meta)


def test_a_few_labelled_digits_of_some_classes(make_cfg, tmp_path: Path):
    cfg = make_cfg("data.keep=[5,6,7,8,9]", "data.train_per_class=10")
    meta = prepare(cfg.data, tmp_path)
    assert meta["classes"] == ["5", "6", "7", "8", "9"] and meta["num_outputs"] == 5
    y_train = load_prepared(tmp_path).splits["train"][1]
    assert np.bincount(y_train.numpy()).tolist() == [10] * 5
    # Validation and test stay whole: about 15% each of the ~900 images of five digits.
    assert meta["sizes"]["val"] == meta["sizes"]["test"] == 135
    with pytest.raises(ConfigError, match=r"data.train_per_class must be a positive number"):
        prepare(make_cfg("data=linear", "+data.train_per_class=5").data, tmp_path / "linear")


def test_huge_values_are_standardised_not_flattened(make_cfg, tmp_path: Path):
    # Values of 1e30 fit float32, but their variance (1e60) does not: statistics taken in
    # float32 would turn the column into zeros or NaN.
    values = np.random.default_rng(0).normal(size=(200, 1)) * 1e30
    np.savez(tmp_path / "big.npz", x=values, y=values[:, 0] * 2)
    cfg = make_cfg("data=npz", f"data.path={tmp_path / 'big.npz'}", "data.task=regression")
    meta = prepare(cfg.data, tmp_path / "prepared")
    x, y = load_prepared(tmp_path / "prepared", ("train",)).splits["train"]
    assert abs(float(x.mean())) < 1e-3 and abs(float(x.std()) - 1) < 1e-2
    assert np.allclose(y.numpy(), x.numpy(), atol=1e-4)  # y = 2x, standardised alike
    assert np.isfinite(meta["stats"]["x_std"]).all() and meta["stats"]["x_std"][0][0] > 1e29


def test_a_source_s_values_are_checked_as_stored(make_cfg, monkeypatch, tmp_path: Path):
    """Whatever a source returns, what float32 cannot hold stops prepare before it writes."""
    from dlpipe.data import synthetic
    from dlpipe.data.raw import RawData

    def huge(samples: int = 200, noise: float = 0.1, seed: int = 0) -> RawData:
        x = np.ones((samples, 2))
        x[7, 1] = 1e300
        return RawData(x=x, y=np.ones((samples, 1), dtype=np.float32), task="regression")

    monkeypatch.setattr(synthetic, "linear", huge)
    for normalise in ("true", "false"):
        out = tmp_path / normalise
        with pytest.raises(
            DataError, match=r"^data 'linear': x of sample 7 holds 1e\+300, beyond float32's"
        ):
            prepare(make_cfg("data=linear", f"data.normalise={normalise}").data, out)
        assert not out.exists()


def test_a_batch_larger_than_the_training_split_is_refused(make_cfg, prepared):
    from dlpipe.config import checks as config

    meta, _ = prepared
    config.check_batch_size(make_cfg("data.batch_size=1257"), meta)
    with pytest.raises(ConfigError) as caught:
        config.check_batch_size(make_cfg("data.batch_size=100000"), meta)
    assert str(caught.value) == (
        "data.batch_size=100000 exceeds the training split's 1257 samples: each epoch would be "
        "one step on all of them; set data.batch_size to at most 1257"
    )
