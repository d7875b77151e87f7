"""Recurrent networks: a plain RNN (tanh), a GRU and an LSTM over a sequence's steps.

The final hidden state (of both directions when bidirectional) summarises the sequence
for the output layer. Images are read row by row, one row per step.
"""

from collections.abc import Sequence
from typing import Annotated

import torch
from torch import nn

from dlpipe.config.schema.targets import Range
from dlpipe.models.shapes import ImageRows, sequence_shape

CELLS = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}
Positive = Annotated[int, Range(gt=0)]
Dropout = Annotated[float, Range(ge=0, lt=1)]


class Recurrent(nn.Module):
    def __init__(
        self,
        cell: str,
        input_shape: Sequence[int],
        num_outputs: int,
        hidden: int,
        layers: int,
        bidirectional: bool,
        dropout: float,
    ) -> None:
        super().__init__()
        _, features = sequence_shape(cell, input_shape)
        self.rows = ImageRows()
        self.rnn = CELLS[cell](
            features,
            hidden,
            num_layers=layers,
            batch_first=True,
            bidirectional=bidirectional,
            # PyTorch applies it between stacked layers only.
            dropout=dropout if layers > 1 else 0.0,
        )
        self.directions = 2 if bidirectional else 1
        self.head = nn.Sequential(
            nn.Dropout(dropout), nn.Linear(hidden * self.directions, num_outputs)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, state = self.rnn(self.rows(x))
        last = state[0] if isinstance(state, tuple) else state  # an LSTM adds its cell state
        # (layers * directions, batch, hidden): the top layer's final state per direction.
        summary = torch.cat(list(last[-self.directions :]), dim=1)
        return self.head(summary)


# One plain function per cell, each its own `_target_`: their settings are read from
# their signatures without importing torch, which a function made by a factory would hide.


def rnn(
    input_shape: Sequence[int],
    num_outputs: int,
    hidden: Positive = 128,
    layers: Positive = 1,
    bidirectional: bool = False,
    dropout: Dropout = 0.0,
) -> nn.Module:
    """A RNN (tanh) of `layers` stacked layers with `hidden` units each."""
    return Recurrent("rnn", input_shape, num_outputs, hidden, layers, bidirectional, dropout)


def gru(
    input_shape: Sequence[int],
    num_outputs: int,
    hidden: Positive = 128,
    layers: Positive = 1,
    bidirectional: bool = False,
    dropout: Dropout = 0.0,
) -> nn.Module:
    """A GRU of `layers` stacked layers with `hidden` units each."""
    return Recurrent("gru", input_shape, num_outputs, hidden, layers, bidirectional, dropout)


def lstm(
    input_shape: Sequence[int],
    num_outputs: int,
    hidden: Positive = 128,
    layers: Positive = 1,
    bidirectional: bool = False,
    dropout: Dropout = 0.0,
) -> nn.Module:
    """A LSTM of `layers` stacked layers with `hidden` units each."""
    return Recurrent("lstm", input_shape, num_outputs, hidden, layers, bidirectional, dropout)
