"""Transformer encoder (Vaswani et al. 2017) with a class token, for sequences and images.

A sequence's steps, or an image's non-overlapping `patch` x `patch` squares (as in ViT),
become tokens; sinusoidal position encodings tell them apart; multi-head self-attention
layers mix them; the class token's final state feeds the output layer. A sequence's
padded steps (all NaN, see dlpipe.models.padding) are masked out of the attention, so
padding changes no output.
"""

import math
from collections.abc import Sequence
from typing import Annotated

import torch
from torch import nn

from dlpipe.config.schema.targets import Range
from dlpipe.errors import ConfigError
from dlpipe.models.padding import steps_mask
from dlpipe.models.shapes import SEQUENCES, mismatch

Positive = Annotated[int, Range(gt=0)]


class Patches(nn.Module):
    """(batch, channels, height, width) -> (batch, patches, channels * patch * patch)."""

    def __init__(self, patch: int) -> None:
        super().__init__()
        self.patch = patch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.patch
        batch, channels, height, width = x.shape
        x = x.reshape(batch, channels, height // p, p, width // p, p)
        return x.permute(0, 2, 4, 1, 3, 5).reshape(batch, (height // p) * (width // p), -1)


def sinusoids(length: int, size: int) -> torch.Tensor:
    """(length, size) position encodings: sines and cosines of geometric frequencies."""
    position = torch.arange(length, dtype=torch.float32)[:, None]
    frequency = torch.exp(torch.arange(0, size, 2, dtype=torch.float32) * (-math.log(1e4) / size))
    table = torch.zeros(length, size)
    table[:, 0::2] = torch.sin(position * frequency)
    table[:, 1::2] = torch.cos(position * frequency[: size // 2])
    return table


def tokens_of(input_shape: Sequence[int], patch: int) -> tuple[nn.Module, int, int]:
    """The module that turns a sample into tokens, the number of tokens and their size."""
    if len(input_shape) == 2:
        steps, features = input_shape
        return nn.Identity(), steps, features
    if len(input_shape) != 3:
        raise mismatch("transformer", SEQUENCES, input_shape)
    channels, height, width = input_shape
    if patch < 1 or height % patch or width % patch:
        raise ConfigError(
            f"model.patch={patch} must divide the image's height and width {(height, width)}"
        )
    return Patches(patch), (height // patch) * (width // patch), channels * patch * patch


class Transformer(nn.Module):
    def __init__(
        self,
        input_shape: Sequence[int],
        num_outputs: int,
        width: int,
        heads: int,
        layers: int,
        feedforward: int,
        dropout: float,
        patch: int,
    ) -> None:
        super().__init__()
        if width % heads:
            raise ConfigError(f"model.width={width} must be a multiple of model.heads={heads}")
        self.tokens, count, size = tokens_of(input_shape, patch)
        self.embed = nn.Linear(size, width)
        self.cls = nn.Parameter(torch.zeros(1, 1, width))
        self.register_buffer("position", sinusoids(count + 1, width)[None], persistent=False)
        layer = nn.TransformerEncoderLayer(
            width, heads, feedforward, dropout, batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, num_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens, real = steps_mask(self.tokens(x))
        tokens = self.embed(tokens)
        cls = self.cls.expand(len(tokens), -1, -1)
        # The class token and the real steps are attended to; padded steps never are.
        ignored = torch.cat([torch.zeros_like(real[:, :1]), ~real], dim=1)
        hidden = torch.cat([cls, tokens], dim=1) + self.position[:, : tokens.shape[1] + 1]
        hidden = self.encoder(hidden, src_key_padding_mask=ignored if ignored.any() else None)
        return self.head(self.norm(hidden[:, 0]))


def transformer(
    input_shape: Sequence[int],
    num_outputs: int,
    width: Positive = 64,
    heads: Positive = 4,
    layers: Positive = 2,
    feedforward: Positive = 128,
    dropout: Annotated[float, Range(ge=0, lt=1)] = 0.1,
    patch: Positive = 2,
) -> nn.Module:
    """`layers` pre-norm encoder layers of `heads` attention heads over `width`-wide tokens."""
    return Transformer(input_shape, num_outputs, width, heads, layers, feedforward, dropout, patch)
