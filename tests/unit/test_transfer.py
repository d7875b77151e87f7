"""Transfer learning: weights copied by name and shape, freezing, and bad sources named."""

from pathlib import Path

import pytest
import torch

from dlpipe.errors import ConfigError, DataError
from dlpipe.models import build_model
from dlpipe.transfer import checkpoint_path, freeze, load_weights


def save_checkpoint(model: torch.nn.Module, path: Path) -> Path:
    """A Lightning-style checkpoint: the task holds the model as `model`."""
    state = {f"model.{name}": value for name, value in model.state_dict().items()}
    torch.save({"state_dict": state}, path)
    return path


def test_matching_weights_are_copied_and_a_new_head_stays_fresh(tmp_path: Path):
    torch.manual_seed(0)
    source = build_model("mlp", (64,), 10, hidden=[32, 16])
    path = save_checkpoint(source, tmp_path / "source.ckpt")
    target = build_model("mlp", (64,), 3, hidden=[32, 16])  # other classes: other head
    fresh = load_weights(target, path)
    assert fresh == ["5.bias", "5.weight"]
    assert torch.equal(target[1].weight, source[1].weight)
    assert not torch.equal(target[5].bias, source[5].bias[:3])


def test_freezing_the_body_or_the_first_layers(tmp_path: Path):
    model = build_model("mlp", (64,), 3, hidden=[32, 16])
    fresh = ["5.bias", "5.weight"]
    frozen = freeze(model, "body", fresh)
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert trainable == set(fresh) and frozen == 64 * 32 + 32 + 32 * 16 + 16
    model = build_model("mlp", (64,), 3, hidden=[32, 16])
    assert freeze(model, 1, []) == 64 * 32 + 32  # the first layer holding weights
    with pytest.raises(ConfigError, match=r"transfer.freeze=3 would freeze all 3 layers"):
        freeze(build_model("mlp", (64,), 3, hidden=[32, 16]), 3, [])


def test_a_checkpoint_of_another_model_is_named(tmp_path: Path):
    path = save_checkpoint(build_model("cnn", (1, 8, 8), 10), tmp_path / "cnn.ckpt")
    with pytest.raises(DataError, match=r"cnn.ckpt holds no weights of this model"):
        load_weights(build_model("lstm", (1, 8, 8), 10), path)
    (tmp_path / "broken.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(
        DataError, match=r"broken.ckpt is truncated or not a checkpoint \(.*\): set transfer.source"
    ):
        load_weights(build_model("cnn", (1, 8, 8), 10), tmp_path / "broken.ckpt")


def test_a_source_that_is_no_file_nor_run_is_named(tmp_path: Path):
    with pytest.raises(ConfigError, match=r"neither a checkpoint file nor an MLflow run id"):
        checkpoint_path("models/nowhere.ckpt", "sqlite:///unused.db", tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    with pytest.raises(ConfigError, match=r"no checkpoints/best.ckpt of that run"):
        checkpoint_path("0" * 32, uri, tmp_path)
