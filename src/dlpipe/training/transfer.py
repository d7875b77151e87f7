"""Transfer learning: start a model from the weights of an earlier training.

The source is a checkpoint file or the id of an MLflow run (its checkpoints/best.ckpt).
Every weight of the body whose name and shape match is copied; the output layer (the
head) always starts fresh, as the new task's classes are not the old one's. Freezing
then fixes the copied body, or the first N layers, so that only the rest is trained.
"""

import logging
import re
import tempfile
from pathlib import Path

from torch import nn

from dlpipe.errors import ConfigError, DataError
from dlpipe.tracking import client as tracking
from dlpipe.training import checkpoints

log = logging.getLogger(__name__)
_RUN_ID = re.compile(r"^[0-9a-f]{32}$")
_FIX_SOURCE = "set transfer.source to the checkpoint or run id of a finished training"


def checkpoint_path(source: str, tracking_uri: str, folder: Path) -> Path:
    """The checkpoint file `source` names, downloaded into `folder` when it is a run id."""
    path = Path(source)
    if path.is_file():
        return path
    if not _RUN_ID.match(source):
        raise ConfigError(
            f"transfer.source={source} is neither a checkpoint file nor an MLflow run id"
        )
    client = tracking.get_client(tracking_uri)
    try:
        return tracking.download_artifact(client, source, "checkpoints/best.ckpt", folder)
    except (tracking.TrackingStoreError, OSError) as exc:
        raise ConfigError(
            f"transfer.source={source}: no checkpoints/best.ckpt of that run in {tracking_uri} "
            f"({tracking.one_line(exc)})"
        ) from exc


def _holds_weights(part: nn.Module) -> bool:
    return next(part.parameters(), None) is not None


def head_names(model: nn.Module) -> set[str]:
    """The weights of the model's output layer: its last top-level part holding weights,
    looked for inside the one part that holds them all (a model built as one Sequential)."""
    prefix, parts = "", _weighted_parts(model)
    while len(parts) == 1 and _weighted_parts(parts[0][1]):
        prefix, parts = f"{prefix}{parts[0][0]}.", _weighted_parts(parts[0][1])
    if not parts:
        return set()
    name, head = parts[-1]
    return {f"{prefix}{name}.{weight}" for weight, _ in head.named_parameters()}


def _weighted_parts(module: nn.Module) -> list[tuple[str, nn.Module]]:
    return [(name, part) for name, part in module.named_children() if _holds_weights(part)]


def load_weights(model: nn.Module, path: Path) -> list[str]:
    """Copy the weights of the checkpoint at `path` into `model`, all but its output layer,
    where names and shapes match; return the names of the weights left fresh."""
    saved = checkpoints.model_weights(checkpoints.load_checkpoint(path, _FIX_SOURCE))
    own, head = model.state_dict(), head_names(model)
    taken = {
        name: saved[name]
        for name, value in own.items()
        if name not in head and name in saved and saved[name].shape == value.shape
    }
    if not taken:
        raise DataError(
            f"checkpoint {path} holds no weights of this model: was it trained with another "
            "model (model._target_) or other model settings?"
        )
    model.load_state_dict({**own, **taken})
    return sorted(set(own) - set(taken))


def freeze(model: nn.Module, how: str | int, fresh: list[str]) -> int:
    """Stop training part of `model`: `none`, `body` (every copied weight) or the first N
    layers (top-level parts holding weights). Returns how many weights are frozen."""
    if how == "none":
        return 0
    if how == "body":
        frozen = [p for name, p in model.named_parameters() if name not in fresh]
    elif isinstance(how, int) and not isinstance(how, bool) and how >= 0:
        layers = [layer for layer in model.children() if _holds_weights(layer)]
        if how >= len(layers):
            raise ConfigError(
                f"transfer.freeze={how} would freeze all {len(layers)} layers: nothing would train"
            )
        frozen = [p for layer in layers[:how] for p in layer.parameters()]
    else:
        raise ConfigError(f"transfer.freeze must be none, body or a number of layers, got {how!r}")
    for param in frozen:
        param.requires_grad_(False)
    return sum(param.numel() for param in frozen)


def transfer(model: nn.Module, source: str, how: str | int, tracking_uri: str) -> dict[str, str]:
    """Start `model` from `source`, freeze as asked; return tags recording what was done."""
    with tempfile.TemporaryDirectory() as folder:
        path = checkpoint_path(source, tracking_uri, Path(folder))
        fresh = load_weights(model, path)
    frozen = freeze(model, how, fresh)
    log.info(f"transfer from {source}: fresh {', '.join(fresh) or 'none'}; {frozen} frozen")
    return {"dlpipe.transfer_fresh": ",".join(fresh), "dlpipe.transfer_frozen": str(frozen)}
