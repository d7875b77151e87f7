"""Checkpoints read back safely, and what is wrong with a bad one named.

A checkpoint is loaded with `weights_only=True`: tensors and plain containers only, so a
file from elsewhere cannot run code while it loads. A bad one is told apart as missing,
truncated or not a checkpoint at all, or saved by another model, in one line that ends
with how to get a good one.
"""

from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from dlpipe.errors import DataError
from dlpipe.models import registry
from dlpipe.models.multitask import build_for_data
from dlpipe.tracking.client import one_line

# A task (a LightningModule) holds the model it trains as `self.model`.
_MODEL_PREFIX = "model."


def load_checkpoint(path: Path | str, fix: str) -> dict:
    """The Lightning checkpoint at `path`, checked to load and to hold a state dict.

    Args:
        path: the checkpoint file.
        fix: how to get a usable checkpoint; it ends the error message.

    Returns:
        The loaded checkpoint (`state_dict`, and the epoch, loops and optimiser states
        that Lightning resumes from).

    Raises:
        DataError: the file is missing, truncated, or not a checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"checkpoint {path} is missing: {fix}")
    if path.stat().st_size == 0:
        raise _not_a_checkpoint(path, "the file is empty", fix)
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # RuntimeError, EOFError, UnpicklingError...: by the damage done
        raise _not_a_checkpoint(path, one_line(exc), fix) from exc
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("state_dict"), dict):
        raise _not_a_checkpoint(path, "it holds no state_dict", fix)
    return checkpoint


def _not_a_checkpoint(path: Path, why: str, fix: str) -> DataError:
    return DataError(f"checkpoint {path} is truncated or not a checkpoint ({why}): {fix}")


def model_weights(checkpoint: dict) -> dict[str, torch.Tensor]:
    """The weights of the trained model in `checkpoint`, named as in the model itself."""
    return {
        name.removeprefix(_MODEL_PREFIX): value
        for name, value in checkpoint["state_dict"].items()
        if name.startswith(_MODEL_PREFIX)
    }


def load_model(network: Mapping, checkpoint: Path | str, fix: str) -> nn.Module:
    """Rebuild a trained model as `network` describes it and load its weights from
    `checkpoint`, in eval mode: nothing pickled, the settings rebuild the code.

    Args:
        network: how it was built, as `build_network` reads it.
        checkpoint: the Lightning checkpoint holding its weights.
        fix: how to get a usable checkpoint; it ends the error message.
    """
    model = build_network(network)
    load_into(model, checkpoint, fix)
    return model.eval()


def build_network(network: Mapping) -> nn.Module:
    """The network, untrained, as `network` describes it: its model settings (`model`),
    `input_shape`, `num_outputs`, for multi-task data its `heads` and `shared` width, for
    text its `vocab_size`,
    as a run record's `serving()` and the serving settings hold them."""
    return build_for_data(
        registry.recorded(network["model"]),
        network["input_shape"],
        network["num_outputs"],
        network.get("heads"),
        network.get("shared"),
        network.get("vocab_size"),
        network.get("task") == registry.TOKEN_CLASSIFICATION,
    )


def load_into(model: nn.Module, path: Path | str, fix: str) -> None:
    """Load every weight of `model` from the checkpoint at `path`.

    Args:
        model: the model, built with the settings it was trained with.
        path: the checkpoint file.
        fix: how to get a usable checkpoint; it ends the error message.

    Raises:
        DataError: the checkpoint is missing, truncated, not a checkpoint, or its weights
            are not this model's (saved by another model or other settings).
    """
    saved = model_weights(load_checkpoint(path, fix))
    mismatch = _mismatch(model.state_dict(), saved)
    if mismatch:
        raise DataError(f"checkpoint {path} was saved by another model: {mismatch}: {fix}")
    model.load_state_dict(saved)


def _mismatch(own: dict[str, torch.Tensor], saved: dict[str, torch.Tensor]) -> str:
    """How `saved` fails to fit a model whose state dict is `own`; empty when it fits."""
    lacking = [name for name in own if name not in saved]
    reshaped = [name for name in own if name in saved and saved[name].shape != own[name].shape]
    extra = [name for name in saved if name not in own]
    found = []
    if lacking:
        found.append(
            f"it lacks {len(lacking)} of this model's {len(own)} weights (e.g. {lacking[0]})"
        )
    if reshaped:
        name = reshaped[0]
        found.append(
            f"shapes differ for {len(reshaped)} weights (e.g. {name}: {_shape(own[name])} "
            f"here, {_shape(saved[name])} saved)"
        )
    if extra:
        found.append(f"it holds {len(extra)} weights this model lacks (e.g. {extra[0]})")
    return "; ".join(found)


def _shape(tensor: torch.Tensor) -> str:
    return "x".join(map(str, tensor.shape)) or "scalar"
