"""Checkpoints load as weights only; a missing, truncated or foreign one is named as such."""

from pathlib import Path

import pytest
import torch

from dlpipe.errors import DataError
from dlpipe.models.registry import build_model
from dlpipe.training.checkpoints import load_checkpoint, load_into
from tests.conftest import model_cfg

FIX = "train again"


def save_checkpoint(model: torch.nn.Module, path: Path) -> Path:
    """A Lightning-style checkpoint: the task holds the model as `model`."""
    state = {f"model.{name}": value for name, value in model.state_dict().items()}
    torch.save({"state_dict": state, "epoch": 3}, path)
    return path


def mlp(hidden: list[int]) -> torch.nn.Module:
    return build_model(model_cfg("mlp", hidden=hidden, dropout=0.0), (64,), 10)


def test_weights_of_the_same_model_are_loaded(tmp_path: Path):
    torch.manual_seed(0)
    source = mlp([32])
    path = save_checkpoint(source, tmp_path / "best.ckpt")
    assert load_checkpoint(path, FIX)["epoch"] == 3
    target = mlp([32])
    load_into(target, path, FIX)
    assert all(
        torch.equal(a, b) for a, b in zip(source.parameters(), target.parameters(), strict=True)
    )


def test_a_missing_file_is_named_missing(tmp_path: Path):
    with pytest.raises(DataError, match=rf"checkpoint {tmp_path}/best.ckpt is missing: {FIX}$"):
        load_checkpoint(tmp_path / "best.ckpt", FIX)


@pytest.mark.parametrize(
    "damage,why",
    [
        (lambda data: data[:1000], r"RuntimeError: PytorchStreamReader failed"),
        (lambda data: b"", r"the file is empty"),
        (lambda data: b"hello, not a checkpoint", r"KeyError"),
    ],
)
def test_a_truncated_file_or_other_content_is_named(tmp_path: Path, damage, why):
    path = save_checkpoint(mlp([32]), tmp_path / "best.ckpt")
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(DataError, match=rf"best.ckpt is truncated or not a checkpoint \({why}"):
        load_checkpoint(path, FIX)


def test_a_file_without_a_state_dict_is_not_a_checkpoint(tmp_path: Path):
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(DataError, match=r"other.pt is truncated or not a checkpoint \(it holds no"):
        load_checkpoint(tmp_path / "other.pt", FIX)


def test_pickled_code_is_never_loaded(tmp_path: Path):
    torch.save({"state_dict": {}, "code": Path("anything")}, tmp_path / "pickled.ckpt")
    with pytest.raises(DataError, match=r"pickled.ckpt is truncated or not a checkpoint \(Unpick"):
        load_checkpoint(tmp_path / "pickled.ckpt", FIX)


def test_weights_of_another_model_are_named_foreign(tmp_path: Path):
    path = save_checkpoint(build_model(model_cfg("cnn"), (1, 8, 8), 10), tmp_path / "cnn.ckpt")
    with pytest.raises(
        DataError,
        match=r"cnn.ckpt was saved by another model: it lacks 1 of this model's 4 weights "
        r"\(e.g. 3.bias\); shapes differ for 2 weights \(e.g. 1.weight: 32x64 here, 32 saved\); "
        r"it holds 25 weights this model lacks \(e.g. 0.weight\): train again$",
    ):
        load_into(mlp([32]), path, FIX)


def test_weights_of_other_settings_are_named_by_shape(tmp_path: Path):
    path = save_checkpoint(mlp([16]), tmp_path / "small.ckpt")
    with pytest.raises(
        DataError,
        match=r"small.ckpt was saved by another model: shapes differ for 3 weights "
        r"\(e.g. 1.weight: 32x64 here, 16x64 saved\)",
    ):
        load_into(mlp([32]), path, FIX)
