"""Feed-forward network (multi-layer perceptron) over flattened inputs."""

import math
from collections.abc import Sequence

from torch import nn

from dlpipe.errors import ConfigError
from dlpipe.models.registry import register

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU, "sigmoid": nn.Sigmoid}


def make_activation(name: str) -> nn.Module:
    if name not in ACTIVATIONS:
        raise ConfigError(
            f"unknown activation '{name}': choose one of {', '.join(sorted(ACTIVATIONS))}"
        )
    return ACTIVATIONS[name]()


@register("mlp")
def mlp(
    input_shape: Sequence[int],
    num_outputs: int,
    hidden: Sequence[int] = (256, 128),
    activation: str = "relu",
    dropout: float = 0.0,
    batch_norm: bool = False,
) -> nn.Module:
    layers: list[nn.Module] = [nn.Flatten()]
    width = math.prod(input_shape)
    for size in hidden:
        layers.append(nn.Linear(width, size))
        if batch_norm:
            layers.append(nn.BatchNorm1d(size))
        layers.append(make_activation(activation))
        if dropout:
            layers.append(nn.Dropout(dropout))
        width = size
    layers.append(nn.Linear(width, num_outputs))
    return nn.Sequential(*layers)
