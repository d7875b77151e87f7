"""Input shapes the model families read, and the one clear error when the data does not fit."""

from collections.abc import Sequence

from torch import Tensor, nn

from dlpipe.errors import ConfigError

IMAGES = "images shaped (channels, height, width)"
SEQUENCES = "sequences shaped (steps, features) or images shaped (channels, height, width)"
TOKENS = "token ids (texts shaped (steps,))"


def mismatch(model: str, expected: str, input_shape: Sequence[int]) -> ConfigError:
    return ConfigError(
        f"model '{model}' expects {expected}, but the data has samples shaped "
        f"{tuple(input_shape)}: choose a model for this data (e.g. model=mlp)"
    )


def require_image(model: str, input_shape: Sequence[int]) -> tuple[int, int, int]:
    if len(input_shape) != 3:
        raise mismatch(model, IMAGES, input_shape)
    return tuple(input_shape)


def require_tokens(model: str, input_shape: Sequence[int], vocab_size: int | None) -> int:
    """The context (the longest text, in tokens) of a model that reads token ids."""
    if vocab_size is None or len(input_shape) != 1:
        raise mismatch(model, TOKENS, input_shape)
    return input_shape[0]


def sequence_shape(model: str, input_shape: Sequence[int]) -> tuple[int, int]:
    """(steps, features) of what a sequence model reads: an image is read row by row."""
    if len(input_shape) == 2:
        return tuple(input_shape)
    if len(input_shape) == 3:
        channels, height, width = input_shape
        return height, channels * width
    raise mismatch(model, SEQUENCES, input_shape)


class ImageRows(nn.Module):
    """(batch, channels, height, width) -> (batch, height, channels * width); sequences pass."""

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4:
            return x
        batch, channels, height, width = x.shape
        return x.permute(0, 2, 1, 3).reshape(batch, height, channels * width)


def check_vocabulary(model: str, num_outputs: int, vocab_size: int) -> None:
    """A language model scores every token of the vocabulary: one output each."""
    if num_outputs != vocab_size:
        raise ConfigError(
            f"model '{model}' predicts the next of {vocab_size} tokens, but the data asks for "
            f"{num_outputs} outputs: train it on a text corpus (e.g. data=python_docs)"
        )
