"""InceptionTime's network (Ismail Fawaz et al. 2020, "InceptionTime: finding AlexNet for
time series classification") for series classification.

Each Inception module narrows its input to `bottleneck` channels (a 1x1 convolution, when
the input is wider), runs convolutions of several widths over it (`kernels`, 40/20/10
steps by default) beside a max-pool branch, `filters` channels each, concatenated, then
batch norm and ReLU. Every third module adds a shortcut from three modules back (1x1
convolution and batch norm). Global average pooling over time and a linear layer score
the series. Reads what conv1d (the FCN) reads, the same way, padded steps included.
"""

from collections.abc import Sequence
from typing import Annotated

import torch
from torch import nn

from dlpipe.config.schema.targets import Range
from dlpipe.models.conv1d import Sizes, check_series, same_padding, series_of
from dlpipe.models.padding import MaskedBatchNorm1d, masked_mean

Positive = Annotated[int, Range(gt=0)]


def pool_real(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Max over each step and its two neighbours, padded steps and the series' ends left
    out (as an unpadded series' ends are), padded steps of the result zero."""
    real = mask[:, None]
    pooled = nn.functional.max_pool1d(torch.where(real, x, -torch.inf), 3, 1, padding=1)
    return torch.where(real, pooled, torch.zeros((), dtype=x.dtype))


class Module(nn.Module):
    """One Inception module: `len(kernels) + 1` branches of `filters` channels."""

    def __init__(self, width: int, filters: int, bottleneck: int, kernels: Sequence[int]) -> None:
        super().__init__()
        narrow = width > bottleneck
        self.bottleneck = nn.Conv1d(width, bottleneck, 1, bias=False) if narrow else nn.Identity()
        inner = bottleneck if narrow else width
        self.convs = nn.ModuleList(
            nn.Sequential(same_padding(kernel), nn.Conv1d(inner, filters, kernel, bias=False))
            for kernel in kernels
        )
        self.pooled = nn.Conv1d(width, filters, 1, bias=False)
        self.norm = MaskedBatchNorm1d(filters * (len(kernels) + 1))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        narrow = self.bottleneck(x)
        branches = [conv(narrow) for conv in self.convs]
        branches.append(self.pooled(pool_real(x, mask)))
        return torch.relu(self.norm(torch.cat(branches, dim=1), mask))


class Shortcut(nn.Module):
    """A 1x1 convolution and batch norm from three modules back, added before the ReLU."""

    def __init__(self, width: int, size: int) -> None:
        super().__init__()
        self.conv = nn.Conv1d(width, size, 1, bias=False)
        self.norm = MaskedBatchNorm1d(size)

    def forward(self, x: torch.Tensor, out: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return torch.relu(out + self.norm(self.conv(x), mask))


class Inception(nn.Module):
    def __init__(
        self,
        input_shape: Sequence[int],
        num_outputs: int,
        filters: int,
        bottleneck: int,
        kernels: Sequence[int],
        depth: int,
        residual: bool,
    ) -> None:
        super().__init__()
        width = check_series("inception", input_shape)
        size = filters * (len(kernels) + 1)
        widths = [width] + [size] * (depth - 1)
        self.blocks = nn.ModuleList(Module(w, filters, bottleneck, kernels) for w in widths)
        # After modules 3, 6, ...: from the input of the module two before.
        self.shortcuts = nn.ModuleDict(
            {str(i): Shortcut(widths[i - 2], size) for i in range(2, depth, 3)} if residual else {}
        )
        self.head = nn.Linear(size, num_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        series, mask = series_of(x)
        start = series
        for i, module in enumerate(self.blocks):
            series = module(series, mask)
            if str(i) in self.shortcuts:
                series = start = self.shortcuts[str(i)](start, series, mask)
        return self.head(masked_mean(series, mask, dim=2))  # global average pooling over time


def inception(
    input_shape: Sequence[int],
    num_outputs: int,
    filters: Positive = 32,
    bottleneck: Positive = 32,
    kernels: Sizes = (40, 20, 10),
    depth: Positive = 6,
    residual: bool = True,
) -> nn.Module:
    """`depth` Inception modules, a shortcut every third when `residual`."""
    return Inception(input_shape, num_outputs, filters, bottleneck, kernels, depth, residual)
