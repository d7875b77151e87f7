"""1-D convolutional network for series classification: the fully convolutional network
(FCN) of Wang, Yan and Oates 2017, "Time series classification from scratch with deep
neural networks: a strong baseline".

Blocks of convolution, batch norm and ReLU slide along the time axis ('same' padding
keeps its length); global average pooling over time makes the features independent of
the series' length; a linear layer scores them. A sequence (steps, features) is read
with its features as channels, a flat vector (features,) as a single-channel series.
"""

from collections.abc import Sequence
from typing import Annotated

import torch
from torch import nn

from dlpipe.config.schema.targets import Range
from dlpipe.errors import ConfigError
from dlpipe.models.shapes import mismatch

SERIES = "sequences shaped (steps, features) or flat vectors (features,)"
Sizes = Annotated[list[int], Range(gt=0, nonempty=True)]


class FCN(nn.Module):
    def __init__(
        self,
        input_shape: Sequence[int],
        num_outputs: int,
        channels: Sequence[int],
        kernels: Sequence[int],
        dropout: float,
    ) -> None:
        super().__init__()
        if len(input_shape) not in (1, 2):
            raise mismatch("conv1d", SERIES, input_shape)
        layers: list[nn.Module] = []
        width = input_shape[1] if len(input_shape) == 2 else 1
        for size, kernel in zip(channels, kernels, strict=True):
            layers += [
                # 'same' padding, the extra step of an even kernel on the right (as Keras
                # pads); spelled out, as torch warns on padding="same" with even kernels.
                nn.ConstantPad1d(((kernel - 1) // 2, kernel // 2), 0.0),
                nn.Conv1d(width, size, kernel, bias=False),
                nn.BatchNorm1d(size),
                nn.ReLU(),
            ]
            width = size
        self.blocks = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(width, num_outputs))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (batch, steps, features) -> (batch, features, steps); (batch, T) -> (batch, 1, T).
        series = x.transpose(1, 2) if x.dim() == 3 else x[:, None, :]
        return self.head(self.blocks(series).mean(dim=2))  # global average pooling over time


def conv1d(
    input_shape: Sequence[int],
    num_outputs: int,
    channels: Sizes = (128, 256, 128),
    kernels: Sizes = (8, 5, 3),
    dropout: Annotated[float, Range(ge=0, lt=1)] = 0.0,
) -> nn.Module:
    """One block per entry of `channels`, its kernel `kernels` long (same-length lists)."""
    if len(kernels) != len(channels):
        raise ConfigError(
            f"model.kernels={list(kernels)} and model.channels={list(channels)} differ in "
            "length: give one kernel size per block"
        )
    return FCN(input_shape, num_outputs, channels, kernels, dropout)
