"""Multi-task learning: one shared body, a head per target.

Any model, dlpipe's or a user's, can be the body: built with `shared` outputs, it becomes
a feature extractor whose features every head reads. The heads' outputs are returned side by side,
so the model still maps a batch to one tensor (see data.raw.head_slices).
"""

from collections.abc import Sequence

import torch
from torch import nn

from dlpipe.errors import ConfigError
from dlpipe.models.registry import build_model, model_task


class SharedBody(nn.Module):
    """body -> ReLU -> one linear head per target, outputs concatenated in head order."""

    def __init__(self, body: nn.Module, shared: int, outputs: dict[str, int]):
        super().__init__()
        self.body = body
        self.heads = nn.ModuleDict(
            {name: nn.Linear(shared, size) for name, size in outputs.items()}
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = torch.relu(self.body(x))
        return torch.cat([head(features) for head in self.heads.values()], dim=1)


def build_for_data(
    model: dict,
    input_shape: Sequence[int],
    num_outputs: int,
    heads: list[dict] | None,
    shared: int,
    vocab_size: int | None = None,
    per_token: bool = False,
) -> nn.Module:
    """The model of the model config `model` for data with one target, or, given the
    data's `heads`, that model as the shared body of a multi-task network. Text data's
    models read token ids of a vocabulary of `vocab_size`; `per_token`: the data wants
    outputs per token (see dlpipe.models.registry.build_model)."""
    # A model with its own task (an autoencoder) ignores the data's targets.
    if not heads or model_task(model, "multitask") != "multitask":
        return build_model(model, input_shape, num_outputs, vocab_size, per_token)
    if isinstance(shared, bool) or not isinstance(shared, int) or shared < 1:
        raise ConfigError(f"multitask.shared must be a positive number of features, got {shared!r}")
    body = build_model(model, input_shape, shared, vocab_size)
    return SharedBody(body, shared, {head["name"]: head["outputs"] for head in heads})
