"""The perceptron: one layer of weights and biases over the flattened input, no hidden layer."""

import math
from collections.abc import Sequence

import torch
from torch import nn

from dlpipe.errors import ConfigError
from dlpipe.models.registry import register

OUTPUTS = ("sigmoid", "step")


class Perceptron(nn.Module):
    """Scores w.x + b. `output` says how the classification task reads and trains them:
    `sigmoid` (logistic; softmax over several outputs) or `step` (the perceptron's sign,
    trained by the perceptron criterion)."""

    def __init__(self, features: int, num_outputs: int, output: str) -> None:
        super().__init__()
        self.linear = nn.Linear(features, num_outputs)
        self.output = output

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x.flatten(1))


@register("perceptron")
def perceptron(input_shape: Sequence[int], num_outputs: int, output: str = "sigmoid") -> nn.Module:
    if output not in OUTPUTS:
        raise ConfigError(f"model.output must be one of {', '.join(OUTPUTS)}, got {output!r}")
    return Perceptron(math.prod(input_shape), num_outputs, output)
