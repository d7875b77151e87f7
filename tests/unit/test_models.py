"""The model registry and the families in it."""

import pytest
import torch

from dlpipe.errors import ConfigError
from dlpipe.models import build_model, list_models, register


def test_registry_lists_every_family():
    assert list_models() == ["cnn", "mlp"]


def test_registering_a_name_twice_is_refused():
    with pytest.raises(ValueError, match="registered twice"):
        register("mlp")(lambda input_shape, num_outputs: torch.nn.Identity())


@pytest.mark.parametrize("name", list_models())
def test_each_model_learns_a_tiny_batch(name):
    # A few steps on 16 fixed samples must fit them: forward, backward and the update all work.
    torch.manual_seed(0)
    x, y = torch.randn(16, 1, 8, 8), torch.arange(16) % 4
    model = build_model(name, (1, 8, 8), 4)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(60):
        optimiser.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        optimiser.step()
    model.eval()
    assert (model(x).argmax(1) == y).float().mean() == 1.0


def test_cnn_on_rows_names_expected_and_actual_shape():
    with pytest.raises(
        ConfigError, match=r"expects images shaped \(channels, height, width\).*\(64,\)"
    ):
        build_model("cnn", (64,), 10)


def test_cnn_too_deep_for_small_images_says_what_to_change():
    with pytest.raises(ConfigError, match=r"use fewer model\.channels"):
        build_model("cnn", (1, 8, 8), 10, channels=[8, 8, 8, 8])


def test_mlp_options_shape_the_network():
    model = build_model(
        "mlp", (1, 8, 8), 10, hidden=[32], activation="tanh", dropout=0.5, batch_norm=True
    )
    kinds = [type(layer).__name__ for layer in model]
    assert kinds == ["Flatten", "Linear", "BatchNorm1d", "Tanh", "Dropout", "Linear"]
    with pytest.raises(ConfigError, match=r"unknown activation 'swish'"):
        build_model("mlp", (1, 8, 8), 10, activation="swish")
