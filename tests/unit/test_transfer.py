"""Transfer learning: weights copied by name and shape, freezing, and bad sources named."""

from pathlib import Path

import pytest
import torch

from dlpipe.errors import ConfigError, DataError
from dlpipe.models.registry import build_model
from dlpipe.training.transfer import checkpoint_path, freeze, load_weights
from tests.conftest import model_cfg

# Flatten, then Linear-ReLU per hidden layer (no dropout), then the head: layer 5.
MLP = model_cfg("mlp", hidden=[32, 16], dropout=0.0)


def save_checkpoint(model: torch.nn.Module, path: Path) -> Path:
    """A Lightning-style checkpoint: the task holds the model as `model`."""
    state = {f"model.{name}": value for name, value in model.state_dict().items()}
    torch.save({"state_dict": state}, path)
    return path


def test_matching_weights_are_copied_and_a_new_head_stays_fresh(tmp_path: Path):
    torch.manual_seed(0)
    source = build_model(MLP, (64,), 10)
    path = save_checkpoint(source, tmp_path / "source.ckpt")
    target = build_model(MLP, (64,), 3)  # other classes: other head
    fresh = load_weights(target, path)
    assert fresh == ["5.bias", "5.weight"]
    assert torch.equal(target[1].weight, source[1].weight)
    assert not torch.equal(target[5].bias, source[5].bias[:3])


class OneSequential(torch.nn.Module):
    """A user's model whose layers are all one Sequential."""

    def __init__(self, num_outputs: int):
        super().__init__()
        self.layers = torch.nn.Sequential(
            torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, num_outputs)
        )


def test_the_head_of_a_model_built_as_one_sequential_is_its_last_layer(tmp_path: Path):
    source = OneSequential(10)
    path = save_checkpoint(source, tmp_path / "source.ckpt")
    target = OneSequential(10)
    assert load_weights(target, path) == ["layers.2.bias", "layers.2.weight"]
    assert torch.equal(target.layers[0].weight, source.layers[0].weight)


def test_freezing_the_body_or_the_first_layers(tmp_path: Path):
    model = build_model(MLP, (64,), 3)
    fresh = ["5.bias", "5.weight"]
    frozen = freeze(model, "body", fresh)
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert trainable == set(fresh) and frozen == 64 * 32 + 32 + 32 * 16 + 16
    model = build_model(MLP, (64,), 3)
    assert freeze(model, 1, []) == 64 * 32 + 32  # the first layer holding weights
    with pytest.raises(ConfigError, match=r"transfer.freeze=3 would freeze all 3 layers"):
        freeze(build_model(MLP, (64,), 3), 3, [])


def test_a_checkpoint_of_another_model_is_named(tmp_path: Path):
    path = save_checkpoint(build_model(model_cfg("cnn"), (1, 8, 8), 10), tmp_path / "cnn.ckpt")
    with pytest.raises(DataError, match=r"cnn.ckpt holds no weights of this model"):
        load_weights(build_model(model_cfg("lstm"), (1, 8, 8), 10), path)
    (tmp_path / "broken.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(
        DataError, match=r"broken.ckpt is truncated or not a checkpoint \(.*\): set transfer.source"
    ):
        load_weights(build_model(model_cfg("cnn"), (1, 8, 8), 10), tmp_path / "broken.ckpt")


def test_a_source_that_is_no_file_nor_run_is_named(tmp_path: Path):
    with pytest.raises(ConfigError, match=r"neither a checkpoint file nor an MLflow run id"):
        checkpoint_path("models/nowhere.ckpt", "sqlite:///unused.db", tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    with pytest.raises(ConfigError, match=r"no checkpoints/best.ckpt of that run"):
        checkpoint_path("0" * 32, uri, tmp_path)
