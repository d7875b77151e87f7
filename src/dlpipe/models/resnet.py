"""Residual network (He et al. 2016): basic blocks whose input skips ahead and is added back.

The skip connections let the gradient reach early layers undiminished, so depth helps
instead of hurting. Each stage after the first halves the image and widens the channels.
"""

from collections.abc import Sequence
from typing import Annotated

import torch
from torch import nn

from dlpipe.config.schema.targets import Range
from dlpipe.models.shapes import require_image


class BasicBlock(nn.Module):
    """Two 3x3 conv-batchnorm layers; the input (projected when its shape changes) is added."""

    def __init__(self, width_in: int, width: int, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(width_in, width, 3, stride=stride, padding=1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(),
            nn.Conv2d(width, width, 3, padding=1, bias=False),
            nn.BatchNorm2d(width),
        )
        self.skip = nn.Identity()
        if stride != 1 or width_in != width:
            self.skip = nn.Sequential(
                nn.Conv2d(width_in, width, 1, stride=stride, bias=False), nn.BatchNorm2d(width)
            )
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.body(x) + self.skip(x))


def resnet(
    input_shape: Sequence[int],
    num_outputs: int,
    channels: Annotated[list[int], Range(gt=0, nonempty=True)] = (32, 64),
    blocks: Annotated[int, Range(gt=0)] = 2,
    dropout: Annotated[float, Range(ge=0, lt=1)] = 0.0,
) -> nn.Module:
    """`blocks` basic blocks per stage, one stage per entry of `channels`."""
    image_channels, _, _ = require_image("resnet", input_shape)
    layers: list[nn.Module] = [
        nn.Conv2d(image_channels, channels[0], 3, padding=1, bias=False),
        nn.BatchNorm2d(channels[0]),
        nn.ReLU(),
    ]
    width = channels[0]
    for stage, size in enumerate(channels):
        for block in range(blocks):
            stride = 2 if stage > 0 and block == 0 else 1
            layers.append(BasicBlock(width, size, stride))
            width = size
    layers += [
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Dropout(dropout),
        nn.Linear(width, num_outputs),
    ]
    return nn.Sequential(*layers)
