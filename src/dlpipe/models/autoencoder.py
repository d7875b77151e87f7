"""Autoencoder: an encoder squeezes the input into `latent` numbers, a decoder rebuilds it.

Trained to reconstruct its input (unsupervised: labels are not used), the encoder learns
an embedding of the data; `encode` exposes it. Both halves are feed-forward networks
over the flattened input, mirror images of each other.
"""

import itertools
import math
from collections.abc import Sequence
from typing import Annotated, Literal

import torch
from torch import nn

from dlpipe.config.schema.targets import Range
from dlpipe.models.mlp import make_activation
from dlpipe.models.registry import sets_task


def _stack(widths: Sequence[int], activation: str, dropout: float) -> list[nn.Module]:
    """Linear layers through `widths`, each but the last followed by the activation."""
    layers: list[nn.Module] = []
    for index, (width_in, width) in enumerate(itertools.pairwise(widths)):
        layers.append(nn.Linear(width_in, width))
        if index < len(widths) - 2:
            layers.append(make_activation(activation))
            if dropout:
                layers.append(nn.Dropout(dropout))
    return layers


class Autoencoder(nn.Module):
    def __init__(
        self,
        input_shape: Sequence[int],
        hidden: Sequence[int],
        latent: int,
        activation: str,
        dropout: float,
    ) -> None:
        super().__init__()
        self.input_shape = tuple(input_shape)
        widths = [math.prod(input_shape), *hidden, latent]
        self.encoder = nn.Sequential(nn.Flatten(), *_stack(widths, activation, dropout))
        self.decoder = nn.Sequential(*_stack(widths[::-1], activation, dropout))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The embedding: (batch, latent)."""
        return self.encoder(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The reconstruction, shaped like the input."""
        return self.decoder(self.encode(x)).reshape(len(x), *self.input_shape)


@sets_task("reconstruction")
def autoencoder(
    input_shape: Sequence[int],
    num_outputs: int,
    hidden: Annotated[list[int], Range(gt=0, nonempty=True)] = (128,),
    latent: Annotated[int, Range(gt=0)] = 16,
    activation: Literal["relu", "tanh", "gelu", "sigmoid"] = "relu",
    dropout: Annotated[float, Range(ge=0, lt=1)] = 0.0,
) -> nn.Module:
    """`num_outputs` is unused: an autoencoder's output is its input's shape."""
    return Autoencoder(input_shape, hidden, latent, activation, dropout)
