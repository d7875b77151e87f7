"""Padded steps of variable-length sequences, read the same way by every family.

Sequences of different lengths arrive padded at the end to one length, every feature of a
padded step NaN (a real step may not be all NaN). A model takes the padded steps out of
what it computes, so padding changes none of its outputs: the steps are zeroed (NaN would
poison every sum they touch, and their gradients), and a mask of the real steps tells
pooling, batch statistics, recurrences and attention which steps to read.
"""

import torch
from torch import nn


def steps_mask(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """`x` (batch, steps, features) with its padded steps zeroed, and the mask of its real
    steps (batch, steps), True where a step has a feature that is not NaN."""
    mask = ~torch.isnan(x).all(dim=-1)
    # where, not a multiplication: 0 * NaN is NaN, and where's gradient at padding is 0.
    return torch.where(mask[..., None], x, torch.zeros((), dtype=x.dtype)), mask


def lengths(mask: torch.Tensor) -> torch.Tensor:
    """The number of real steps of each sequence (at least 1), on the CPU as packing wants."""
    return mask.sum(dim=1).clamp(min=1).cpu()


def masked_mean(x: torch.Tensor, mask: torch.Tensor, dim: int) -> torch.Tensor:
    """The mean of `x` over its real steps along `dim` (global average pooling over time).

    Args:
        x: features with a steps axis at `dim`.
        mask: (batch, steps) real steps.
        dim: the steps axis of `x` (1 for (batch, steps, features), 2 for (batch,
            channels, steps)).
    """
    weights = mask.to(x.dtype).unsqueeze(-1 if dim == 1 else 1)
    return (x * weights).sum(dim) / weights.sum(dim).clamp(min=1)


class MaskedBatchNorm1d(nn.BatchNorm1d):
    """Batch norm over (batch, channels, steps) whose statistics count real steps only.

    Zeroed padding would otherwise pull a batch's mean and variance towards zero, so a
    padded series would be normalised differently from the same series unpadded. Padded
    steps come out zero, ready for the next 'same'-padded convolution, which then sees
    what it sees past the end of an unpadded series. The weights are a BatchNorm1d's.
    """

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if mask is None or bool(mask.all()):
            return super().forward(x)
        steps = x.transpose(1, 2)  # (batch, steps, channels)
        out = torch.zeros_like(steps)
        out[mask] = super().forward(steps[mask])  # (real steps, channels): one sample each
        return out.transpose(1, 2)


class ZeroFilledFlatten(nn.Flatten):
    """Flattens a sample, the padded steps of a sequence (batch, steps, features) zeroed.

    For a model that reads a sample whole (an MLP), whose input length is fixed: a padded
    step then weighs what a zero input does, and passes no NaN on."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(steps_mask(x)[0] if x.dim() == 3 else x)
