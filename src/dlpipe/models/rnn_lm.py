"""Recurrent language model (Zaremba et al. 2014): an RNN reads a text token by token and
scores, at every position, each token of the vocabulary as the next.

A recurrent network is causal by construction: the state at position t has read tokens up
to t only, so padding at the end of a text changes none of its real positions. The
hidden state is as wide as the embedding so that the output layer can share the token
embedding's weights (Press and Wolf 2017; Inan et al. 2017).
"""

from collections.abc import Sequence
from typing import Annotated, Literal

import torch
from torch import nn

from dlpipe.config.schema.targets import Range
from dlpipe.models.recurrent import CELLS, recurrence_init
from dlpipe.models.registry import LANGUAGE_MODEL, sets_task
from dlpipe.models.shapes import check_vocabulary, require_tokens

Positive = Annotated[int, Range(gt=0)]


class RecurrentLM(nn.Module):
    def __init__(self, cell: str, vocab_size: int, width: int, layers: int, dropout: float):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, width)
        # PyTorch's N(0, 1) embedding, tied to the output, would start the logits far from
        # uniform; the word-level LMs' uniform(-0.1, 0.1) does not.
        nn.init.uniform_(self.embed.weight, -0.1, 0.1)
        self.dropout = nn.Dropout(dropout)
        self.rnn = CELLS[cell](
            width,
            width,
            num_layers=layers,
            batch_first=True,
            dropout=dropout if layers > 1 else 0.0,
        )
        recurrence_init(self.rnn, cell)
        self.head = nn.Linear(width, vocab_size)
        self.head.weight = self.embed.weight  # tied: the same Parameter

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Token ids (batch, steps) -> next-token logits (batch, steps, vocab)."""
        states, _ = self.rnn(self.dropout(self.embed(x)))
        return self.head(self.dropout(states))


@sets_task(LANGUAGE_MODEL)
def rnn_lm(
    input_shape: Sequence[int],
    num_outputs: int,
    vocab_size: int | None,
    cell: Literal["rnn", "gru", "lstm"] = "lstm",
    width: Positive = 128,
    layers: Positive = 2,
    dropout: Annotated[float, Range(ge=0, lt=1)] = 0.1,
) -> nn.Module:
    """`layers` stacked `cell` layers of `width` units over `width`-wide token embeddings."""
    require_tokens("rnn_lm", input_shape, vocab_size)
    check_vocabulary("rnn_lm", num_outputs, vocab_size)
    return RecurrentLM(cell, vocab_size, width, layers, dropout)
