"""The model families of conf/model/ and a user's own model, all built by `_target_`:
shapes, gradients, learning, bad settings."""

import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from dlpipe.errors import ConfigError
from dlpipe.models.init import initialise
from dlpipe.models.registry import (
    LANGUAGE_MODEL,
    build_model,
    check_model,
    own_task,
    recorded,
)
from dlpipe.training.gradcheck import check_gradients, check_model_gradients
from tests.conftest import CONF_DIR, SAMPLE_SHAPES, VOCAB, model_cfg, reads, sample, vocab_size

# Every family conf/model/ offers: one added there is tested here with no edit.
FAMILIES = sorted(path.stem for path in (CONF_DIR / "model").glob("*.yaml"))


def build(name: str, input_shape, num_outputs: int, **settings) -> torch.nn.Module:
    return build_model(model_cfg(name, **settings), input_shape, num_outputs)


def build_for(name: str, kind: str, num_outputs: int) -> torch.nn.Module:
    """The family for samples of `kind`; a language model scores each token of VOCAB."""
    outputs = VOCAB if task(name) == LANGUAGE_MODEL else num_outputs
    return build_model(model_cfg(name), SAMPLE_SHAPES[kind], outputs, vocab_size(kind))


def task(name: str) -> str:
    """The family's task on classification data: its own, if it has one."""
    return own_task(model_cfg(name)) or "classification"


def first_read(name: str) -> str:
    """The first kind of sample the family reads."""
    kinds = [kind for kind in SAMPLE_SHAPES if reads(model_cfg(name), kind)]
    assert kinds, f"model '{name}' reads none of {SAMPLE_SHAPES}"
    return kinds[0]


# A GAN's forward pass turns noise into samples; it is tested on its own below.
MAPPERS = [name for name in FAMILIES if task(name) != "generation"]
CLASSIFIERS = [name for name in FAMILIES if task(name) == "classification"]
LANGUAGE_MODELS = [name for name in FAMILIES if task(name) == LANGUAGE_MODEL]


def test_every_family_is_named_by_its_builder_and_checks_before_torch_loads():
    for name in FAMILIES:
        values = model_cfg(name)
        assert values["name"] == name and values["_target_"].startswith("dlpipe.models.")
        assert check_model(values)["name"] == name


# Each family with each kind of sample it reads (the others it refuses in one line).
READ = [(name, kind) for name in MAPPERS for kind in SAMPLE_SHAPES if reads(model_cfg(name), kind)]


@pytest.mark.parametrize("name,kind", READ)
def test_forward_and_backward_shapes(name, kind):
    model = build_for(name, kind, 5)
    shape = SAMPLE_SHAPES[kind]
    # Token ids are not differentiable: the weights' gradients show the backward pass.
    x = sample(kind, 6).requires_grad_(kind != "tokens")
    out = model(x)
    wanted = {"reconstruction": (6, *shape), LANGUAGE_MODEL: (6, *shape, VOCAB)}
    assert out.shape == wanted.get(task(name), (6, 5))
    out.sum().backward()
    assert x.grad is None if kind == "tokens" else x.grad.shape == x.shape
    assert all(p.grad is not None for p in model.parameters()), "a weight gets no gradient"


@pytest.mark.parametrize("name", MAPPERS)
def test_gradients_match_finite_differences(name):
    kind = first_read(name)
    model = build_for(name, kind, 3)
    results = check_gradients(model, SAMPLE_SHAPES[kind], batch=2, vocab_size=vocab_size(kind))
    assert results and all(result.passed for result in results), results


def fit(
    model: torch.nn.Module, loss_of: Callable[[], torch.Tensor], steps: int, lr: float = 1e-2
) -> list[float]:
    """`steps` Adam steps on the loss `loss_of` computes; the loss before each step."""
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
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
    kind = first_read(name)
    x, y = sample(kind, 16), torch.arange(16) % 4
    model = build_for(name, kind, 4)
    losses = fit(model, lambda: torch.nn.functional.cross_entropy(model(x), y), steps=60)
    model.eval()
    assert losses[-1] < losses[0] / 4
    assert (model(x).argmax(1) == y).float().mean() == 1.0


# A GPT trains at ~1e-3 (as GPT-2 and nanoGPT do): at 1e-2 Adam moves its embeddings,
# drawn at a scale of 0.02, by half their size each step.
LM_LEARNING_RATES = {"gpt": 1e-3}


@pytest.mark.parametrize("name", LANGUAGE_MODELS)
def test_each_language_model_learns_a_tiny_batch(name):
    # A few steps on 4 fixed texts must fit each next token once a text is told apart.
    torch.manual_seed(0)
    x = sample("tokens", 4)
    model = build_for(name, "tokens", VOCAB)

    def loss() -> torch.Tensor:
        logits = model(x[:, :-1])
        return torch.nn.functional.cross_entropy(logits.reshape(-1, VOCAB), x[:, 1:].reshape(-1))

    losses = fit(model, loss, steps=60, lr=LM_LEARNING_RATES.get(name, 1e-2))
    model.eval()
    assert losses[-1] < losses[0] / 4
    # From the third token on, each text's next token is predicted.
    assert (model(x[:, :-1]).argmax(-1)[:, 2:] == x[:, 3:]).float().mean() == 1.0


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
        build(name, (64,), 10)


@pytest.mark.parametrize("name", ["lstm", "transformer"])
def test_sequence_models_on_rows_name_expected_and_actual_shape(name):
    with pytest.raises(ConfigError, match=r"expects sequences shaped \(steps, features\).*\(64,\)"):
        build(name, (64,), 10)


def test_cnn_too_deep_for_small_images_says_what_to_change():
    with pytest.raises(ConfigError, match=r"use fewer model\.channels"):
        build("cnn", (1, 8, 8), 10, channels=[8, 8, 8, 8])


def test_transformer_settings_that_cannot_work_are_named():
    with pytest.raises(ConfigError, match=r"model\.patch=3 must divide"):
        build("transformer", (1, 8, 8), 10, patch=3)
    with pytest.raises(ConfigError, match=r"model\.width=30 must be a multiple of model\.heads=4"):
        build("transformer", (1, 8, 8), 10, width=30)


def test_mlp_options_shape_the_network():
    model = build(
        "mlp", (1, 8, 8), 10, hidden=[32], activation="tanh", dropout=0.5, batch_norm=True
    )
    kinds = [type(layer).__name__ for layer in model]
    assert kinds == ["ZeroFilledFlatten", "Linear", "BatchNorm1d", "Tanh", "Dropout", "Linear"]


def test_recurrent_options_shape_the_network():
    model = build("lstm", (12, 3), 2, hidden=16, layers=2, bidirectional=True)
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
    default = build("mlp", (256,), 4, hidden=[64])
    normal = build("mlp", (256,), 4, hidden=[64], init="normal")
    assert normal[1].weight.std().item() == pytest.approx(0.02, rel=0.05)
    assert default[1].weight.std().item() != pytest.approx(0.02, rel=0.05)


def test_autoencoder_learns_to_rebuild_its_input_through_its_embedding():
    torch.manual_seed(0)
    x = torch.randn(32, 1, 8, 8)
    model = build("autoencoder", (1, 8, 8), 10, hidden=[32], latent=4)
    assert model.encode(x).shape == (32, 4)
    losses = fit(model, lambda: torch.nn.functional.mse_loss(model(x), x), steps=100)
    assert losses[-1] < losses[0] * 0.8


def test_gan_draws_samples_its_discriminator_scores():
    model = build("gan", (1, 8, 8), 10, latent=8, hidden=[16, 32])
    samples = model.sample(5, torch.Generator().manual_seed(0))
    assert samples.shape == (5, 1, 8, 8)
    assert model.discriminator(samples).shape == (5, 1)
    for part, shape in ((model.generator, (8,)), (model.discriminator, (1, 8, 8))):
        results = check_gradients(part, shape, batch=2)
        assert results and all(result.passed for result in results)


def test_gradcheck_feeds_a_gan_s_parts_noise_and_samples():
    model = build("gan", (1, 8, 8), 10, latent=8, hidden=[16, 32])
    results = check_model_gradients(model, (1, 8, 8), batch=2)
    assert {result.group.split(".")[0] for result in results} == {"generator", "discriminator"}
    assert all(result.passed for result in results)


# Bad model configs: one line each, naming the setting and what it takes.


@pytest.mark.parametrize(
    "values,message",
    [
        (
            {"name": "cnn", "channels": [8]},
            "model._target_ is missing: choose a model with model=<name> (dlpipe models lists "
            "them) or name your own with model._target_=package.module.Class",
        ),
        (
            model_cfg("cnn", depth=3),
            "model.depth is not a setting of model 'cnn' (dlpipe.models.cnn.cnn): it takes "
            "channels, hidden, dropout",
        ),
        (
            model_cfg("mlp", hidden="abc"),
            "model.hidden must be a non-empty list of integers > 0, got 'abc'",
        ),
        (model_cfg("lstm", layers=0), "model.layers must be an integer > 0, got 0"),
        (
            model_cfg("gru", bidirectional="both"),
            "model.bidirectional must be true or false, got 'both'",
        ),
        (
            model_cfg("mlp", activation="swish"),
            "model.activation must be one of relu, tanh, gelu, sigmoid, got 'swish'",
        ),
        (
            model_cfg("mlp", init="he"),
            "model.init must be one of default, xavier, kaiming, normal, got 'he'",
        ),
    ],
)
def test_bad_model_settings_are_one_line_before_building(values, message):
    with pytest.raises(ConfigError) as caught:
        check_model(values)
    assert str(caught.value) == message
    with pytest.raises(ConfigError, match="^" + message.replace("(", r"\(").replace(")", r"\)")):
        build_model(values, (1, 8, 8), 10)


# A user's own model: a class in a package of the project folder, named by `_target_`.
USER_NETS = '''
    from typing import Annotated

    import torch
    from torch import nn

    from dlpipe.config.schema.targets import Range


    class TinyNet(nn.Module):
        """One hidden layer of `width` units; `extra` more outputs than the data asks."""

        def __init__(
            self,
            input_shape: tuple[int, ...],
            num_outputs: int,
            width: Annotated[int, Range(gt=0)] = 8,
            extra: int = 0,
        ):
            super().__init__()
            self.body = nn.Sequential(
                nn.Flatten(), nn.Linear(int(torch.tensor(input_shape).prod()), width), nn.ReLU()
            )
            self.head = nn.Linear(width, num_outputs + extra)

        def forward(self, x):
            return self.head(self.body(x))


    class Unflattened(nn.Module):
        """Forgets to flatten its input."""

        def __init__(self, input_shape, num_outputs):
            super().__init__()
            self.head = nn.Linear(input_shape[-1], num_outputs)

        def forward(self, x):
            return self.head(x.transpose(1, 2))
'''


@pytest.fixture
def user_package(tmp_path: Path, monkeypatch) -> str:
    """A package `usernets` in a project folder, the working directory; its name is
    forgotten afterwards so that another test's copy imports afresh."""
    package = tmp_path / "usernets"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "nets.py").write_text(textwrap.dedent(USER_NETS))
    monkeypatch.chdir(tmp_path)
    yield "usernets.nets"
    for module in [name for name in sys.modules if name.split(".")[0] == "usernets"]:
        del sys.modules[module]


def test_a_users_class_is_built_and_checked_like_a_family(user_package):
    model = build_model({"_target_": f"{user_package}.TinyNet", "width": 4}, (1, 8, 8), 3)
    assert model(torch.randn(5, 1, 8, 8)).shape == (5, 3) and model.head.in_features == 4
    assert check_model({"_target_": f"{user_package}.TinyNet"})["name"] == "TinyNet"
    with pytest.raises(ConfigError) as caught:
        check_model({"_target_": f"{user_package}.TinyNet", "width": 0})
    assert str(caught.value) == "model.width must be an integer > 0, got 0"
    with pytest.raises(ConfigError) as caught:
        check_model({"_target_": f"{user_package}.TinyNet", "depth": 2})
    assert str(caught.value) == (
        "model.depth is not a setting of model 'TinyNet' (usernets.nets.TinyNet): "
        "it takes width, extra"
    )


def test_a_model_whose_output_does_not_fit_the_data_is_named(user_package):
    with pytest.raises(ConfigError) as caught:
        build_model({"_target_": f"{user_package}.TinyNet", "extra": 2}, (5,), 3)
    assert str(caught.value) == (
        "model 'TinyNet' (usernets.nets.TinyNet) gives outputs shaped (2, 5) for 2 samples "
        "shaped (5,), the data needs (2, 3): make it return 3 numbers per sample, or choose "
        "a model for this data"
    )
    with pytest.raises(ConfigError) as caught:
        build_model({"_target_": f"{user_package}.Unflattened", "name": "mine"}, (4, 6), 3)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(
        "model 'mine' (usernets.nets.Unflattened) fails on 2 samples shaped (4, 6) (RuntimeError: "
    )
    assert message.endswith("make it return 3 numbers per sample, or choose a model for this data")


def test_the_shape_check_leaves_a_model_in_training_mode():
    model = build("cnn", (1, 8, 8), 4)
    assert model.training


def test_a_record_made_before_targets_is_built_from_the_projects_yaml(tmp_path, monkeypatch):
    # models/run.json of an older training holds the family's name and settings only.
    monkeypatch.chdir(CONF_DIR.parent)
    old = {"name": "mlp", "hidden": [8], "init": "default"}
    assert recorded(old) == {"_target_": "dlpipe.models.mlp.mlp", **old}
    assert build_model(recorded(old), (5,), 3)(torch.zeros(4, 5)).shape == (4, 3)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=r"^the recorded model 'mlp' names no _target_ and "):
        recorded(old)
