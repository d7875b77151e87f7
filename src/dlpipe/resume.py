"""Crash-resume: a training killed mid-run continues from models/last.ckpt, in its MLflow run.

The run's id is kept beside the checkpoints (models/resume.json) with the hashes of the
config and data it trains on. The same command, run again, finds it there and, when
neither changed and the run never finished, continues that run instead of opening a new
one. The checkpoint carries the random state and the epoch's batch order, so a resumed
training draws the same batches and dropout masks as an uninterrupted one: its metrics
are equal, bit for bit, on the CPU.
"""

import logging
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.plugins.io import TorchCheckpointIO

from dlpipe import files, tracking
from dlpipe.checkpoints import load_checkpoint
from dlpipe.data.arrays import ArrayLoader
from dlpipe.errors import ConfigError
from dlpipe.paths import Outputs

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Resumption:
    run_id: str
    checkpoint: Path
    epochs_done: int


def write_record(out: Outputs, run_id: str, config_hash: str, data_hash: str) -> None:
    """Keep the run's id beside the checkpoints it is about to write."""
    record = {"run_id": run_id, "config_hash": config_hash, "data_hash": data_hash}
    files.write_json(out.resume_file, record)


def clear_record(out: Outputs) -> None:
    """The run finished: the same command again trains anew."""
    out.resume_file.unlink(missing_ok=True)


def find(client, out: Outputs, config_hash: str, data_hash: str) -> Resumption | None:
    """The interrupted training to continue under `out`, or None to start afresh.

    Continues only a run that never finished, whose config and data are these, and
    whose last checkpoint exists; a run still training in another process is an error,
    as two trainings writing one models/ folder would spoil each other's checkpoints.
    """
    if not out.resume_file.exists():
        return None
    record = files.read_json(out.resume_file)
    if (record.get("config_hash"), record.get("data_hash")) != (config_hash, data_hash):
        log.info(f"{out.resume_file} is of a training with other settings or data: starting anew")
        return None
    run = _recorded_run(client, record["run_id"])
    if run is None or run.info.status == "FINISHED":
        return None
    if run.info.status == "RUNNING" and tracking.owner_alive(run.data.tags):
        raise ConfigError(
            f"run {run.info.run_id} is still training into {out.models} (process "
            f"{run.data.tags.get(tracking.PID_TAG)}): wait for it, or train elsewhere"
        )
    if not out.last_ckpt.exists():
        log.info(f"run {run.info.run_id} stopped before its first checkpoint: starting anew")
        return None
    epochs_done = _epochs_done(out.last_ckpt)
    return Resumption(run.info.run_id, out.last_ckpt, epochs_done)


def _recorded_run(client, run_id: str):
    from mlflow.exceptions import MlflowException

    try:
        return client.get_run(run_id)
    except MlflowException:
        return None  # recorded in another tracking store


def _epochs_done(checkpoint: Path) -> int:
    fix = "run again with resume=false to start anew"
    return int(load_checkpoint(checkpoint, fix)["epoch"]) + 1


class RandomState(Callback):
    """Save Python's, NumPy's and torch's random state in every checkpoint; restore it on
    resume, so dropout draws what the uninterrupted training would have drawn."""

    def state_dict(self) -> dict:
        numpy_state = np.random.get_state()
        return {
            "python": random.getstate(),
            # Plain lists: a checkpoint must load with weights_only=True.
            "numpy": [numpy_state[0], numpy_state[1].tolist(), *numpy_state[2:]],
            "torch": torch.get_rng_state(),
        }

    def load_state_dict(self, state: dict) -> None:
        version, keys, *rest = state["numpy"]
        random.setstate(_tuples(state["python"]))
        np.random.set_state((version, np.array(keys, dtype=np.uint32), *rest))
        torch.set_rng_state(state["torch"])


def _tuples(value):
    """random.setstate wants the nested tuples that a checkpoint may hand back as lists."""
    return tuple(_tuples(item) for item in value) if isinstance(value, list | tuple) else value


class EpochOrder(Callback):
    """Shuffle epoch k's batches with the permutation of epoch k, also after a resume."""

    def __init__(self, loader: ArrayLoader):
        self.loader = loader

    def on_train_epoch_start(self, trainer, module) -> None:
        self.loader.epoch = trainer.current_epoch


class AtomicCheckpointIO(TorchCheckpointIO):
    """Write each checkpoint beside its final name and rename it into place, so a kill
    mid-write leaves the previous checkpoint whole (Lightning's own writer renames from
    the system's temporary folder, which may be another disk: a copy, not a rename)."""

    def save_checkpoint(self, checkpoint: dict, path, storage_options=None) -> None:
        with files.atomic_path(Path(path)) as tmp:
            torch.save(checkpoint, tmp)
