"""Multi-task learning: data with several targets, heads on a shared body, weighted losses."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.datasets import load_digits
from torch.nn import functional as F

from dlpipe.config import checks as config
from dlpipe.config.schema.validate import validate
from dlpipe.data.arrays import load_prepared
from dlpipe.data.located import located_digits
from dlpipe.data.prepare import prepare
from dlpipe.data.tables import table
from dlpipe.errors import ConfigError
from dlpipe.models.multitask import build_for_data
from dlpipe.tasks.objectives import multitask
from dlpipe.training.transfer import head_names
from tests.conftest import model_cfg

HEADS = [
    {"name": "digit", "task": "classification", "classes": list("0123"), "columns": 1,
     "outputs": 4},
    {"name": "position", "task": "regression", "classes": None, "columns": 2, "outputs": 2},
]  # fmt: skip


def test_located_digits_hold_each_digit_at_its_recorded_centre():
    raw = located_digits(canvas=12, seed=3)
    digits = load_digits()
    assert raw.task == "multitask" and raw.x.shape == (1797, 1, 12, 12)
    assert [(h["name"], h["columns"], h["outputs"]) for h in raw.heads] == [
        ("digit", 1, 10),
        ("position", 2, 2),
    ]
    assert raw.y[:, 0].tolist() == digits.target.tolist()
    corners = (raw.y[:, 1:] - 3.5).astype(int)
    assert corners.min() == 0 and corners.max() == 12 - 8
    for sample in (0, 500, 1796):
        row, col = corners[sample]
        image = raw.x[sample, 0]
        assert np.array_equal(image[row : row + 8, col : col + 8], digits.images[sample])
        assert image.sum() == digits.images[sample].sum()  # nothing outside the digit


def test_prepare_standardises_positions_and_keeps_classes(make_cfg, tmp_path: Path):
    meta = prepare(make_cfg("data=located_digits").data, tmp_path)
    assert meta["task"] == "multitask" and meta["num_outputs"] == 12
    assert [head["name"] for head in meta["heads"]] == ["digit", "position"]
    assert meta["stats"]["y_mean"][0][0] == 0 and meta["stats"]["y_std"][0][0] == 1
    splits = load_prepared(tmp_path).splits
    y_train = splits["train"][1].numpy()
    assert set(np.unique(y_train[:, 0])) == set(range(10))  # class indices, untouched
    assert np.allclose(y_train[:, 1:].mean(0), 0, atol=1e-4)
    assert np.allclose(y_train[:, 1:].std(0), 1, atol=1e-2)
    # Stratified by the digit: every class in every split.
    for name in ("val", "test"):
        assert set(np.unique(splits[name][1][:, 0].numpy())) == set(range(10))


def test_loss_is_the_weighted_sum_of_the_heads_losses():
    torch.manual_seed(0)
    outputs, y = torch.randn(6, 6), torch.randn(6, 3)
    y[:, 0] = torch.tensor([0.0, 1, 2, 3, 1, 0])
    cross_entropy = F.cross_entropy(outputs[:, :4], y[:, 0].long())
    squared = F.mse_loss(outputs[:, 4:], y[:, 1:])
    objective = multitask(HEADS, {"digit": 2.0, "position": 0.5})
    assert objective.loss(outputs, None, y).item() == pytest.approx(
        (2 * cross_entropy + 0.5 * squared).item()
    )
    metrics = objective.metrics(*objective.keep(outputs, None, y))
    assert set(metrics) == {"digit/loss", "digit/acc", "position/loss", "position/mae"}
    assert metrics["digit/loss"].item() == pytest.approx(cross_entropy.item())
    assert metrics["position/mae"].item() == pytest.approx(F.l1_loss(outputs[:, 4:], y[:, 1:]))


def test_a_head_weighted_zero_does_not_train_the_body():
    model = build_for_data(model_cfg("mlp", hidden=[8]), [5], 6, HEADS, shared=4)
    x, y = torch.randn(10, 5), torch.zeros(10, 3)
    multitask(HEADS, {"digit": 0.0, "position": 1.0}).loss(model(x), x, y).backward()
    assert model.heads["digit"].weight.grad.abs().sum() == 0
    assert model.heads["position"].weight.grad.abs().sum() > 0


def test_shared_body_feeds_a_fresh_head_per_target():
    model = build_for_data(model_cfg("cnn", channels=[4]), [1, 8, 8], 6, HEADS, shared=16)
    assert model(torch.randn(3, 1, 8, 8)).shape == (3, 6)
    assert list(model.heads) == ["digit", "position"]
    assert model.heads["digit"].in_features == 16
    # Transfer learning starts every head fresh and copies the body.
    assert head_names(model) == {f"heads.{h}.{w}" for h in model.heads for w in ("weight", "bias")}
    with pytest.raises(ConfigError, match=r"multitask\.shared must be a positive number"):
        build_for_data(model_cfg("mlp"), [5], 6, HEADS, shared=0)
    # A model with its own task (reconstruction) ignores the targets.
    autoencoder = build_for_data(model_cfg("autoencoder", latent=3), [5], 6, HEADS, shared=4)
    assert autoencoder(torch.randn(2, 5)).shape == (2, 5)


@pytest.mark.parametrize(
    "weights,message",
    [
        ("{digit:1,colour:2}", r"multitask.weights.colour: data 'located_digits' has no target"),
        ("{digit:0,position:0}", r"multitask.weights are all 0"),
    ],
)
def test_bad_head_weights_are_named(make_cfg, weights, message):
    cfg = make_cfg("data=located_digits", f"multitask.weights={weights}")
    with pytest.raises(ConfigError, match=message):
        config.head_weights(cfg, located_digits().heads)


def test_head_weights_default_to_one_and_need_several_targets(make_cfg):
    cfg = make_cfg("data=located_digits", "multitask.weights={position:0.25}")
    assert config.head_weights(cfg, HEADS) == {"digit": 1.0, "position": 0.25}
    with pytest.raises(ConfigError, match=r"data 'digits' has one: remove them"):
        config.head_weights(make_cfg("multitask.weights={digit:2}"), None)


def test_each_heads_metrics_can_be_monitored(make_cfg):
    cfg = make_cfg("trainer.checkpoint_monitor=val/position/mae", "trainer.checkpoint_mode=min")
    validate(cfg)
    config.check_monitors(cfg, "multitask", HEADS)
    with pytest.raises(ConfigError, match=r"use one of val/loss, val/digit/loss, val/digit/acc"):
        config.check_monitors(make_cfg("trainer.checkpoint_monitor=val/acc"), "multitask", HEADS)


def test_table_with_several_targets_is_multitask(tmp_path: Path):
    path = tmp_path / "pets.csv"
    pd.DataFrame(
        {"age": [1, 5, 3], "kind": ["cat", "dog", "cat"], "weight": [4.0, 30.0, 5.0]}
    ).to_csv(path, index=False)
    raw = table(str(path), target=["kind", "weight"], task=["classification", "regression"])
    assert raw.task == "multitask" and raw.x.tolist() == [[1], [5], [3]]
    assert raw.y.tolist() == [[0, 4], [1, 30], [0, 5]]
    assert [(h["name"], h["task"], h["outputs"]) for h in raw.heads] == [
        ("kind", "classification", 1),
        ("weight", "regression", 1),
    ]
    with pytest.raises(ConfigError, match=r"data\.task lists 3 tasks for 2 targets"):
        table(str(path), target=["kind", "weight"], task=["regression"] * 3)
