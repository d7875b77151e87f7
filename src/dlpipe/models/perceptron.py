"""The perceptron: one layer of weights and biases over the flattened input, no hidden layer."""

import math
from collections.abc import Sequence
from typing import Literal

import torch
from torch import nn

# How the classification task reads the scores (see Perceptron).
Output = Literal["sigmoid", "step"]


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


def perceptron(
    input_shape: Sequence[int], num_outputs: int, output: Output = "sigmoid"
) -> nn.Module:
    return Perceptron(math.prod(input_shape), num_outputs, output)
