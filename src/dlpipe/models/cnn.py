"""Convolutional network: conv-batchnorm-relu blocks, each halving the image, then a small head."""

from collections.abc import Sequence
from typing import Annotated

from torch import nn

from dlpipe.config.schema.targets import Range
from dlpipe.errors import ConfigError
from dlpipe.models.shapes import require_image


def cnn(
    input_shape: Sequence[int],
    num_outputs: int,
    channels: Annotated[list[int], Range(gt=0, nonempty=True)] = (32, 64),
    hidden: Annotated[int, Range(gt=0)] = 128,
    dropout: Annotated[float, Range(ge=0, lt=1)] = 0.0,
) -> nn.Module:
    """One block of two convolutions and a halving per entry of `channels`."""
    width, _, _ = require_image("cnn", input_shape)
    layers: list[nn.Module] = []
    for size in channels:
        # Two 3x3 convolutions per block see a 5x5 patch at the block's scale.
        layers += [
            nn.Conv2d(width, size, 3, padding=1, bias=False),
            nn.BatchNorm2d(size),
            nn.ReLU(),
            nn.Conv2d(size, size, 3, padding=1, bias=False),
            nn.BatchNorm2d(size),
            nn.ReLU(),
            nn.MaxPool2d(2),
        ]
        width = size
    height, breadth = (side // 2 ** len(channels) for side in input_shape[1:])
    if height < 1 or breadth < 1:
        raise ConfigError(
            f"model 'cnn' halves the image {len(channels)} times, too often for "
            f"{tuple(input_shape[1:])} images: use fewer model.channels"
        )
    layers += [
        nn.Flatten(),
        nn.Dropout(dropout),
        nn.Linear(width * height * breadth, hidden),
        nn.ReLU(),
        nn.Dropout(dropout),
        nn.Linear(hidden, num_outputs),
    ]
    return nn.Sequential(*layers)
