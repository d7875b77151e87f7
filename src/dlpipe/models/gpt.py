"""GPT: a decoder-only transformer language model (Radford et al. 2019, GPT-2's layout).

Token and learned position embeddings feed pre-norm blocks of causal self-attention and
a feed-forward layer; a final LayerNorm and the output layer give, at every position, the
logits of the next token. Causal: no position attends to a later one, so a text's logits
at position t depend on its tokens up to t only, and padding at the end of a text changes
none of its real positions. The output layer shares the token embedding's weights (Press
and Wolf 2017): one matrix both reads and writes tokens.
"""

import math
from collections.abc import Sequence
from typing import Annotated

import torch
import torch.nn.functional as F
from torch import nn

from dlpipe.config.schema.targets import Range
from dlpipe.errors import ConfigError
from dlpipe.models.registry import LANGUAGE_MODEL, sets_task
from dlpipe.models.shapes import check_vocabulary, require_tokens

Positive = Annotated[int, Range(gt=0)]


class CausalSelfAttention(nn.Module):
    def __init__(self, width: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self.out_dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, steps, width = x.shape
        q, k, v = (
            part.view(batch, steps, self.heads, width // self.heads).transpose(1, 2)
            for part in self.qkv(x).split(width, dim=2)
        )
        # Dropout is on the outputs, not on the attention weights: dropping weights inside
        # scaled_dot_product_attention takes its slow path on a CPU (half the speed).
        mixed = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.out_dropout(self.proj(mixed.transpose(1, 2).reshape(batch, steps, width)))


class Block(nn.Module):
    """x + attention(norm(x)), then x + feed-forward(norm(x)): pre-norm, as GPT-2."""

    def __init__(self, width: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.attention_norm = nn.LayerNorm(width)
        self.attention = CausalSelfAttention(width, heads, dropout)
        self.feedforward_norm = nn.LayerNorm(width)
        self.feedforward = nn.Sequential(
            nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width), nn.Dropout(dropout)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attention(self.attention_norm(x))
        return x + self.feedforward(self.feedforward_norm(x))


class GPT(nn.Module):
    def __init__(
        self, context: int, vocab_size: int, width: int, heads: int, layers: int, dropout: float
    ) -> None:
        super().__init__()
        self.context = context
        self.embed = nn.Embedding(vocab_size, width)
        self.position = nn.Embedding(context, width)
        self.dropout = nn.Dropout(dropout)
        self.blocks = nn.Sequential(*(Block(width, heads, dropout) for _ in range(layers)))
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, vocab_size, bias=False)
        self.head.weight = self.embed.weight  # tied: the same Parameter
        self._init_weights(layers)

    def _init_weights(self, layers: int) -> None:
        """GPT-2's: N(0, 0.02) weights, zero biases; the projections that add to the residual
        stream scaled by 1/sqrt(2 * layers), so its variance does not grow with depth. (With
        PyTorch's N(0, 1) embedding, tied logits would start far from uniform.)"""
        with torch.no_grad():
            for name, param in self.named_parameters():
                if name.endswith("bias"):
                    param.zero_()
                elif param.dim() >= 2:
                    std = 0.02 / math.sqrt(2 * layers) if _adds_to_residual(name) else 0.02
                    nn.init.normal_(param, 0.0, std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Token ids (batch, steps), steps <= context -> next-token logits (batch, steps, vocab)."""
        steps = x.shape[1]
        if steps > self.context:
            raise ValueError(f"a text of {steps} tokens is longer than the context {self.context}")
        positions = torch.arange(steps, device=x.device)
        hidden = self.dropout(self.embed(x) + self.position(positions))
        return self.head(self.norm(self.blocks(hidden)))


def _adds_to_residual(name: str) -> bool:
    return name.endswith("attention.proj.weight") or name.endswith("feedforward.2.weight")


@sets_task(LANGUAGE_MODEL)
def gpt(
    input_shape: Sequence[int],
    num_outputs: int,
    vocab_size: int | None,
    width: Positive = 128,
    heads: Positive = 4,
    layers: Positive = 4,
    dropout: Annotated[float, Range(ge=0, lt=1)] = 0.1,
) -> nn.Module:
    """`layers` pre-norm blocks of `heads` causal attention heads over `width`-wide tokens;
    the context is the data's text length."""
    context = require_tokens("gpt", input_shape, vocab_size)
    check_vocabulary("gpt", num_outputs, vocab_size)
    if width % heads:
        raise ConfigError(f"model.width={width} must be a multiple of model.heads={heads}")
    return GPT(context, vocab_size, width, heads, layers, dropout)
