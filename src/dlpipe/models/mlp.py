"""Feed-forward network (multi-layer perceptron) over flattened inputs; a sequence's padded
steps (all NaN, see dlpipe.models.padding) count as zeros."""

import math
from collections.abc import Sequence
from typing import Annotated, Literal

from torch import nn

from dlpipe.config.schema.targets import Range
from dlpipe.models.padding import ZeroFilledFlatten

Activation = Literal["relu", "tanh", "gelu", "sigmoid"]
ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU, "sigmoid": nn.Sigmoid}
Widths = Annotated[list[int], Range(gt=0, nonempty=True)]
Dropout = Annotated[float, Range(ge=0, lt=1)]


def make_activation(name: Activation) -> nn.Module:
    return ACTIVATIONS[name]()


def mlp(
    input_shape: Sequence[int],
    num_outputs: int,
    hidden: Widths = (256, 128),
    activation: Activation = "relu",
    dropout: Dropout = 0.0,
    batch_norm: bool = False,
) -> nn.Module:
    """One hidden layer per entry of `hidden`, each followed by the activation."""
    layers: list[nn.Module] = [ZeroFilledFlatten()]
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
