"""Recurrent networks: a plain RNN (tanh), a GRU and an LSTM over a sequence's steps.

The final hidden state (of both directions when bidirectional) summarises the sequence
for the output layer. Images are read row by row, one row per step. A padded sequence
(trailing steps all NaN, see dlpipe.models.padding) is packed, so each is read up to its
last real step and padding changes no output.
"""

from collections.abc import Sequence
from typing import Annotated

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from dlpipe.config.schema.targets import Range
from dlpipe.models.padding import lengths, steps_mask
from dlpipe.models.shapes import ImageRows, sequence_shape

CELLS = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}
# Gates stacked in a cell's weights, and the one that keeps the state: PyTorch's order is
# input, forget, cell, output (LSTM) and reset, update, new (GRU); both keep it second.
GATES = {"lstm": 4, "gru": 3}
Positive = Annotated[int, Range(gt=0)]
Dropout = Annotated[float, Range(ge=0, lt=1)]


def recurrence_init(rnn: nn.RNNBase, cell: str) -> None:
    """Weights that carry a state across many steps from the first update on.

    PyTorch's uniform recurrent weights shrink or blow up a state over a long series, and an
    LSTM's forget gate, its bias near 0, halves its memory every step: on a 150-step series
    the gradient from the last state never reaches the early steps and training stalls at
    chance. Orthogonal recurrent weights (one square block per gate) keep the state's norm;
    a bias of 1 on the gate that keeps the state (an LSTM's forget gate, Jozefowicz et al.
    2015; a GRU's update gate) makes the cell remember by default.
    """
    with torch.no_grad():
        for name, param in rnn.named_parameters():
            if name.startswith("weight_hh"):
                for gate in param.split(param.shape[1]):
                    nn.init.orthogonal_(gate)
            elif cell in GATES and name.startswith("bias"):
                # The second block of the stacked gates; the two biases (ih, hh) add up.
                size = param.shape[0] // GATES[cell]
                param[size : 2 * size] = 1.0 if name.startswith("bias_ih") else 0.0


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
        recurrence_init(self.rnn, cell)
        self.directions = 2 if bidirectional else 1
        self.head = nn.Sequential(
            nn.Dropout(dropout), nn.Linear(hidden * self.directions, num_outputs)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        steps, mask = steps_mask(self.rows(x))
        if bool(mask.all()):
            _, state = self.rnn(steps)
        else:  # each sequence read to its last real step, both ways when bidirectional
            packed = pack_padded_sequence(steps, lengths(mask), True, enforce_sorted=False)
            _, state = self.rnn(packed)
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
