"""The settings of the models, conf/model/*.yaml: a dataclass per family, its builder's
arguments (dlpipe.models) and `init`."""

from dataclasses import dataclass
from typing import Any, Literal

from dlpipe.schema.check import setting

Activation = Literal["relu", "tanh", "gelu", "sigmoid"]


def dropout() -> Any:
    return setting(ge=0, lt=1)


@dataclass(kw_only=True)
class Model:
    name: str
    init: Literal["default", "xavier", "kaiming", "normal"]


@dataclass(kw_only=True)
class Perceptron(Model):
    output: Literal["sigmoid", "step"]


@dataclass(kw_only=True)
class Mlp(Model):
    hidden: list[int] = setting(gt=0, nonempty=True)
    activation: Activation
    dropout: float = dropout()
    batch_norm: bool


@dataclass(kw_only=True)
class Cnn(Model):
    channels: list[int] = setting(gt=0, nonempty=True)
    hidden: int = setting(gt=0)
    dropout: float = dropout()


@dataclass(kw_only=True)
class Resnet(Model):
    channels: list[int] = setting(gt=0, nonempty=True)
    blocks: int = setting(gt=0)
    dropout: float = dropout()


@dataclass(kw_only=True)
class Recurrent(Model):
    hidden: int = setting(gt=0)
    layers: int = setting(gt=0)
    bidirectional: bool
    dropout: float = dropout()


@dataclass(kw_only=True)
class Transformer(Model):
    width: int = setting(gt=0)
    heads: int = setting(gt=0)
    layers: int = setting(gt=0)
    feedforward: int = setting(gt=0)
    dropout: float = dropout()
    patch: int = setting(gt=0)


@dataclass(kw_only=True)
class Autoencoder(Model):
    hidden: list[int] = setting(gt=0, nonempty=True)
    latent: int = setting(gt=0)
    activation: Activation
    dropout: float = dropout()


@dataclass(kw_only=True)
class Gan(Model):
    latent: int = setting(gt=0)
    hidden: list[int] = setting(gt=0, nonempty=True)
    dropout: float = dropout()


MODELS = {
    "perceptron": Perceptron,
    "mlp": Mlp,
    "cnn": Cnn,
    "resnet": Resnet,
    "rnn": Recurrent,
    "gru": Recurrent,
    "lstm": Recurrent,
    "transformer": Transformer,
    "autoencoder": Autoencoder,
    "gan": Gan,
}
