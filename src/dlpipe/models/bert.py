"""BERT-style text classifier and tagger (Devlin et al. 2019): a transformer encoder over
token ids.

Token and learned position embeddings feed encoder layers of bidirectional
self-attention, pre-norm as dlpipe's transformer (BERT's post-norm layers, and the
LayerNorm on its embeddings, need a learning rate warmed up from ~1e-4 to train). With
pool=cls a learned class token is prepended and its final state feeds the output layer;
with pool=mean the final states of the text's real tokens are averaged; with pool=none
each token's final state feeds it, one row of outputs per token (token classification:
a tag per word). [PAD] tokens
(id 0, at the end of a text) are masked out of the attention and the mean, so padding
changes no output. A text of padding only is read as its first token, so that attention
always has a key.
"""

from collections.abc import Sequence
from typing import Annotated, Literal

import torch
from torch import nn

from dlpipe.config.schema.targets import Range
from dlpipe.errors import ConfigError
from dlpipe.models.shapes import require_tokens

Positive = Annotated[int, Range(gt=0)]
PAD = 0


def real_tokens(x: torch.Tensor) -> torch.Tensor:
    """(batch, steps) True where a text has a token, not [PAD]; the first always counts."""
    real = x != PAD
    real[:, 0] = True
    return real


class Bert(nn.Module):
    def __init__(
        self,
        context: int,
        vocab_size: int,
        num_outputs: int,
        width: int,
        heads: int,
        layers: int,
        feedforward: int,
        dropout: float,
        pool: str,
    ) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, width)
        self.pool = pool
        self.cls = nn.Parameter(torch.zeros(1, 1, width)) if pool == "cls" else None
        self.position = nn.Embedding(context + (pool == "cls"), width)
        layer = nn.TransformerEncoderLayer(
            width, heads, feedforward, dropout, "gelu", batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(
            layer, layers, nn.LayerNorm(width), enable_nested_tensor=False
        )
        self.head = nn.Linear(width, num_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Token ids (batch, steps) -> (batch, num_outputs); pool=none: (batch, steps,
        num_outputs)."""
        real = real_tokens(x)
        hidden = self.embed(x)
        if self.cls is not None:  # the class token is never masked
            hidden = torch.cat([self.cls.expand(len(x), -1, -1), hidden], dim=1)
            real = torch.cat([torch.ones_like(real[:, :1]), real], dim=1)
        positions = torch.arange(hidden.shape[1], device=x.device)
        hidden = hidden + self.position(positions)
        hidden = self.encoder(hidden, src_key_padding_mask=~real)
        if self.pool == "none":
            return self.head(hidden)
        if self.cls is not None:
            return self.head(hidden[:, 0])
        weights = real.unsqueeze(-1).to(hidden.dtype)
        return self.head((hidden * weights).sum(1) / weights.sum(1))


def bert(
    input_shape: Sequence[int],
    num_outputs: int,
    vocab_size: int | None,
    width: Positive = 128,
    heads: Positive = 4,
    layers: Positive = 2,
    feedforward: Positive = 256,
    dropout: Annotated[float, Range(ge=0, lt=1)] = 0.1,
    pool: Literal["cls", "mean", "none"] = "cls",
) -> nn.Module:
    """`layers` encoder layers of `heads` attention heads over `width`-wide tokens; the
    text is summarised by a class token (cls) or the mean of its tokens (mean), or each
    token is classified (none)."""
    context = require_tokens("bert", input_shape, vocab_size)
    if width % heads:
        raise ConfigError(f"model.width={width} must be a multiple of model.heads={heads}")
    return Bert(context, vocab_size, num_outputs, width, heads, layers, feedforward, dropout, pool)
