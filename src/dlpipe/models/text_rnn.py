"""Recurrent text classifier: token embeddings read by an RNN, GRU or LSTM.

Each text is packed to its length (its tokens before the [PAD]s, id 0, at its end; at
least one), so the final state, of both directions when bidirectional, is the one after
its last real token and padding changes no output. That state feeds the output layer.
"""

from collections.abc import Sequence
from typing import Annotated, Literal

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from dlpipe.config.schema.targets import Range
from dlpipe.models.recurrent import CELLS, recurrence_init
from dlpipe.models.shapes import require_tokens

Positive = Annotated[int, Range(gt=0)]
Dropout = Annotated[float, Range(ge=0, lt=1)]
PAD = 0


class TextRNN(nn.Module):
    def __init__(
        self,
        cell: str,
        vocab_size: int,
        num_outputs: int,
        width: int,
        hidden: int,
        layers: int,
        bidirectional: bool,
        dropout: float,
    ) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, width)
        self.rnn = CELLS[cell](
            width,
            hidden,
            num_layers=layers,
            batch_first=True,
            bidirectional=bidirectional,
            dropout=dropout if layers > 1 else 0.0,  # PyTorch's: between stacked layers only
        )
        recurrence_init(self.rnn, cell)
        self.directions = 2 if bidirectional else 1
        self.head = nn.Sequential(
            nn.Dropout(dropout), nn.Linear(hidden * self.directions, num_outputs)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Token ids (batch, steps) -> (batch, num_outputs)."""
        lengths = (x != PAD).sum(dim=1).clamp(min=1).cpu()
        packed = pack_padded_sequence(self.embed(x), lengths, True, enforce_sorted=False)
        _, state = self.rnn(packed)
        last = state[0] if isinstance(state, tuple) else state  # an LSTM adds its cell state
        # (layers * directions, batch, hidden): the top layer's final state per direction.
        return self.head(torch.cat(list(last[-self.directions :]), dim=1))


def text_rnn(
    input_shape: Sequence[int],
    num_outputs: int,
    vocab_size: int | None,
    cell: Literal["rnn", "gru", "lstm"] = "lstm",
    width: Positive = 128,
    hidden: Positive = 128,
    layers: Positive = 1,
    bidirectional: bool = False,
    dropout: Dropout = 0.0,
) -> nn.Module:
    """`layers` stacked `cell` layers of `hidden` units over `width`-wide token embeddings."""
    require_tokens("text_rnn", input_shape, vocab_size)
    return TextRNN(cell, vocab_size, num_outputs, width, hidden, layers, bidirectional, dropout)
