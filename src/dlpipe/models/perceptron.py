"""The perceptron: one layer of weights and biases over the flattened input, no hidden layer."""

import math
from collections.abc import Sequence

from torch import nn

from dlpipe.models.registry import register


@register("perceptron")
def perceptron(input_shape: Sequence[int], num_outputs: int) -> nn.Module:
    """One neuron per output; the task turns its value into a class (softmax, sigmoid)."""
    return nn.Sequential(nn.Flatten(), nn.Linear(math.prod(input_shape), num_outputs))
