"""Text a language model writes: from prompts of token ids, decoded by its tokeniser.

A training logs such samples every epoch and evaluate writes them beside the test metrics,
so that what the loss means can be read: prompts are the first tokens of validation (or
test) windows, text the model never trained on.
"""

import torch

from dlpipe.models.sampling import generate

# Samples per epoch, and their length in tokens; their prompts' length at most.
SAMPLES, TOKENS, PROMPT = 3, 200, 32
# Below 1: likelier tokens, less noise than the model's own distribution.
TEMPERATURE = 0.8


def prompts(x: torch.Tensor, count: int = SAMPLES) -> torch.Tensor:
    """The first tokens of the first `count` windows `x` (n, context) of a split."""
    return x[:count, : min(PROMPT, max(1, x.shape[1] // 4))]


def samples(
    model: torch.nn.Module, tokeniser, starts: torch.Tensor, context: int, seed: int
) -> str:
    """What `model` writes on from each prompt of `starts` (seeing at most `context`
    tokens back), as one document."""
    generator = torch.Generator(device=starts.device).manual_seed(seed)
    written = generate(model, starts, TOKENS, context, TEMPERATURE, None, generator)
    parts = []
    for number, (start, tokens) in enumerate(zip(starts, written, strict=True), 1):
        prompt = tokeniser.decode(start.tolist())
        continued = tokeniser.decode(tokens[len(start) :].tolist())
        parts.append(f"--- sample {number}: prompt, then >>> and what the model wrote\n")
        parts.append(f"{prompt}>>>{continued}\n")
    return "\n".join(parts)
