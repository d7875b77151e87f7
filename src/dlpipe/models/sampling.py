"""Text from a language model: each next token drawn from its logits at the last position.

`temperature` divides the logits (0: always the most likely token, greedy); `top_k`
keeps the k most likely tokens only. The same `generator` seed draws the same text.
"""

import torch
from torch import nn


def generate(
    model: nn.Module,
    prompt: torch.Tensor,
    new_tokens: int,
    context: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """`prompt` (batch, steps) token ids followed by `new_tokens` drawn one at a time, the
    model reading the last `context` tokens each time: (batch, steps + new_tokens).

    The model runs in eval mode (its mode is restored after) and without autograd."""
    if new_tokens < 0 or context < 1 or temperature < 0 or (top_k is not None and top_k < 1):
        raise ValueError(
            f"generate needs new_tokens >= 0, context >= 1, temperature >= 0 and top_k >= 1 "
            f"or None, got {new_tokens}, {context}, {temperature}, {top_k}"
        )
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            tokens = prompt
            for _ in range(new_tokens):
                logits = model(tokens[:, -context:])[:, -1].float()
                drawn = next_token(logits, temperature, top_k, generator)
                tokens = torch.cat([tokens, drawn.to(tokens.dtype)], dim=1)
    finally:
        model.train(was_training)
    return tokens


def next_token(
    logits: torch.Tensor,
    temperature: float,
    top_k: int | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """One token per row of `logits` (batch, vocab): (batch, 1)."""
    if top_k is not None and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if temperature == 0:
        return logits.argmax(dim=-1, keepdim=True)
    probabilities = torch.softmax(logits / temperature, dim=-1)
    return torch.multinomial(probabilities, 1, generator=generator)
