"""The model registry and every family in it: shapes, gradients, learning, bad inputs."""

from collections.abc import Callable

import pytest
import torch

from dlpipe.errors import ConfigError
from dlpipe.gradcheck import check_gradients
from dlpipe.models import build_model, list_models, model_task, register
from dlpipe.models.init import initialise

FAMILIES = [
    "autoencoder",
    "cnn",
    "gan",
    "gru",
    "lstm",
    "mlp",
    "perceptron",
    "resnet",
    "rnn",
    "transformer",
]
# Images as the digits are, and sequences (steps, features) as a time series is.
SHAPES = {"image": (1, 8, 8), "sequence": (12, 3)}
READS_SEQUENCES = {"autoencoder", "gru", "lstm", "mlp", "perceptron", "rnn", "transformer"}
CLASSIFIERS = [
    name for name in list_models() if model_task(name, "classification") == "classification"
]


def test_registry_lists_every_family():
    assert list_models() == FAMILIES


def test_registering_a_name_twice_is_refused():
    with pytest.raises(ValueError, match="registered twice"):
        register("mlp")(lambda input_shape, num_outputs: torch.nn.Identity())


# A GAN's forward pass turns noise into samples; it is tested on its own below.
MAPPERS = [name for name in list_models() if model_task(name, "classification") != "generation"]


def cases() -> list[tuple[str, str]]:
    return [
        (name, kind)
        for name in MAPPERS
        for kind in SHAPES
        if kind == "image" or name in READS_SEQUENCES
    ]


@pytest.mark.parametrize("name,kind", cases())
def test_forward_and_backward_shapes(name, kind):
    model = build_model(name, SHAPES[kind], 5)
    x = torch.randn(6, *SHAPES[kind], requires_grad=True)
    out = model(x)
    reconstructs = model_task(name, "classification") == "reconstruction"
    assert out.shape == ((6, *SHAPES[kind]) if reconstructs else (6, 5))
    out.sum().backward()
    assert x.grad.shape == x.shape
    assert all(p.grad is not None for p in model.parameters()), "a weight gets no gradient"


@pytest.mark.parametrize("name", MAPPERS)
def test_gradients_match_finite_differences(name):
    results = check_gradients(build_model(name, SHAPES["image"], 3), SHAPES["image"], batch=2)
    assert results and all(result.passed for result in results), results


def fit(model: torch.nn.Module, loss_of: Callable[[], torch.Tensor], steps: int) -> list[float]:
    """`steps` Adam steps on the loss `loss_of` computes; the loss before each step."""
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(steps):
        optimiser.zero_grad()
        loss = loss_of()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    return losses


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_each_classifier_learns_a_tiny_batch(name):
    # A few steps on 16 fixed samples must fit them: forward, backward and the update all work.
    torch.manual_seed(0)
    x, y = torch.randn(16, 1, 8, 8), torch.arange(16) % 4
    model = build_model(name, (1, 8, 8), 4)
    losses = fit(model, lambda: torch.nn.functional.cross_entropy(model(x), y), steps=60)
    model.eval()
    assert losses[-1] < losses[0] / 4
    assert (model(x).argmax(1) == y).float().mean() == 1.0


def test_a_broken_gradient_is_caught():
    class Leaky(torch.autograd.Function):
        """Doubles its input, but claims the gradient of the identity."""

        @staticmethod
        def forward(ctx, x):
            return 2 * x

        @staticmethod
        def backward(ctx, grad):
            return grad

    class Wrong(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.good = torch.nn.Linear(4, 4)
            self.bad = torch.nn.Linear(4, 2)

        def forward(self, x):
            return self.bad(Leaky.apply(self.good(x)))

    results = {r.group: r.passed for r in check_gradients(Wrong(), (4,), batch=2)}
    assert results == {"good (Linear)": False, "bad (Linear)": True}


@pytest.mark.parametrize("name", ["cnn", "resnet"])
def test_image_models_on_rows_name_expected_and_actual_shape(name):
    with pytest.raises(
        ConfigError,
        match=rf"model '{name}' expects images shaped \(channels, height, width\).*\(64,\)",
    ):
        build_model(name, (64,), 10)


@pytest.mark.parametrize("name", ["lstm", "transformer"])
def test_sequence_models_on_rows_name_expected_and_actual_shape(name):
    with pytest.raises(ConfigError, match=r"expects sequences shaped \(steps, features\).*\(64,\)"):
        build_model(name, (64,), 10)


def test_cnn_too_deep_for_small_images_says_what_to_change():
    with pytest.raises(ConfigError, match=r"use fewer model\.channels"):
        build_model("cnn", (1, 8, 8), 10, channels=[8, 8, 8, 8])


def test_transformer_settings_that_cannot_work_are_named():
    with pytest.raises(ConfigError, match=r"model\.patch=3 must divide"):
        build_model("transformer", (1, 8, 8), 10, patch=3)
    with pytest.raises(ConfigError, match=r"model\.width=30 must be a multiple of model\.heads=4"):
        build_model("transformer", (1, 8, 8), 10, width=30)


def test_mlp_options_shape_the_network():
    model = build_model(
        "mlp", (1, 8, 8), 10, hidden=[32], activation="tanh", dropout=0.5, batch_norm=True
    )
    kinds = [type(layer).__name__ for layer in model]
    assert kinds == ["Flatten", "Linear", "BatchNorm1d", "Tanh", "Dropout", "Linear"]
    with pytest.raises(ConfigError, match=r"unknown activation 'swish'"):
        build_model("mlp", (1, 8, 8), 10, activation="swish")


def test_recurrent_options_shape_the_network():
    model = build_model("lstm", (12, 3), 2, hidden=16, layers=2, bidirectional=True)
    assert (model.rnn.num_layers, model.rnn.bidirectional) == (2, True)
    assert model.head[-1].in_features == 32  # both directions' final states


@pytest.mark.parametrize(
    "scheme,expected_std",
    [("xavier", (2 / (256 + 64)) ** 0.5), ("kaiming", (2 / 256) ** 0.5), ("normal", 0.02)],
)
def test_init_schemes_set_weights_to_their_scale_and_zero_biases(scheme, expected_std):
    torch.manual_seed(0)
    layer = initialise(torch.nn.Sequential(torch.nn.Linear(256, 64)), scheme)[0]
    assert layer.weight.std().item() == pytest.approx(expected_std, rel=0.05)
    assert torch.count_nonzero(layer.bias) == 0


def test_init_is_applied_from_the_model_settings():
    torch.manual_seed(0)
    default = build_model("mlp", (256,), 4, hidden=[64])
    normal = build_model("mlp", (256,), 4, hidden=[64], init="normal")
    assert normal[1].weight.std().item() == pytest.approx(0.02, rel=0.05)
    assert default[1].weight.std().item() != pytest.approx(0.02, rel=0.05)
    with pytest.raises(ConfigError, match=r"unknown model.init 'he'"):
        build_model("mlp", (256,), 4, init="he")


def test_autoencoder_learns_to_rebuild_its_input_through_its_embedding():
    torch.manual_seed(0)
    x = torch.randn(32, 1, 8, 8)
    model = build_model("autoencoder", (1, 8, 8), 10, hidden=[32], latent=4)
    assert model.encode(x).shape == (32, 4)
    losses = fit(model, lambda: torch.nn.functional.mse_loss(model(x), x), steps=100)
    assert losses[-1] < losses[0] * 0.8


def test_gan_draws_samples_its_discriminator_scores():
    model = build_model("gan", (1, 8, 8), 10, latent=8, hidden=[16, 32])
    samples = model.sample(5, torch.Generator().manual_seed(0))
    assert samples.shape == (5, 1, 8, 8)
    assert model.discriminator(samples).shape == (5, 1)
    for part, shape in ((model.generator, (8,)), (model.discriminator, (1, 8, 8))):
        results = check_gradients(part, shape, batch=2)
        assert results and all(result.passed for result in results)
