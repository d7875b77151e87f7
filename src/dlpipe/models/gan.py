"""Generative adversarial network (Goodfellow et al. 2014): a generator turns random noise
into samples, a discriminator tells them from real ones, and each trains against the other.

Both are feed-forward networks over the flattened sample. The generator's output is
linear: the data it imitates is standardised by the prepare stage, not squashed to [-1, 1].
"""

import itertools
import math
from collections.abc import Callable, Sequence
from typing import Annotated

import torch
from torch import nn

from dlpipe.config.schema.targets import Range
from dlpipe.models.registry import sets_task


def _mlp(widths: Sequence[int], hidden_activation: Callable[[], nn.Module], dropout: float):
    """Linear layers through `widths`, each but the last followed by the activation."""
    layers: list[nn.Module] = []
    for index, (width_in, width) in enumerate(itertools.pairwise(widths)):
        layers.append(nn.Linear(width_in, width))
        if index < len(widths) - 2:
            layers.append(hidden_activation())
            if dropout:
                layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


class GAN(nn.Module):
    def __init__(
        self, input_shape: Sequence[int], latent: int, hidden: Sequence[int], dropout: float
    ) -> None:
        super().__init__()
        self.input_shape = tuple(input_shape)
        self.latent = latent
        size = math.prod(input_shape)
        self.generator = _mlp([latent, *hidden, size], nn.ReLU, 0.0)
        self.discriminator = nn.Sequential(
            nn.Flatten(), _mlp([size, *hidden[::-1], 1], lambda: nn.LeakyReLU(0.2), dropout)
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Samples shaped like the data, from noise `z` shaped (batch, latent)."""
        return self.generator(z).reshape(len(z), *self.input_shape)

    def sample(self, count: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """`count` samples from fresh noise."""
        return self(torch.randn(count, self.latent, generator=generator))

    def part_inputs(self) -> dict[str, tuple[int, ...]]:
        """Its parts and the shape of one input of each: the generator takes noise, the
        discriminator samples (what `dlpipe gradcheck` feeds each)."""
        return {"generator": (self.latent,), "discriminator": self.input_shape}


@sets_task("generation")
def gan(
    input_shape: Sequence[int],
    num_outputs: int,
    latent: Annotated[int, Range(gt=0)] = 32,
    hidden: Annotated[list[int], Range(gt=0, nonempty=True)] = (128, 256),
    dropout: Annotated[float, Range(ge=0, lt=1)] = 0.3,
) -> nn.Module:
    """`hidden` are the generator's widths (the discriminator's, reversed); `num_outputs` is
    unused: a generator's output is a sample shaped like the data."""
    return GAN(input_shape, latent, hidden, dropout)
