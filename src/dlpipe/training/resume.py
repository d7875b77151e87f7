"""Crash-resume: a training killed mid-run continues from models/last.ckpt, in its MLflow run.

The run's id is kept beside the checkpoints (models/resume.json) with the hashes of the
config and data it trains on. The same command, run again, finds it there and, when
neither changed and the run never finished, continues that run instead of opening a new
one. Each checkpoint carries the id of the run that wrote it, so a training resumes only
from its own checkpoints, never from those an earlier training left in the folder. The
checkpoint carries the random state and the epoch's batch order too, so a resumed
training draws the same batches and dropout masks as an uninterrupted one: its metrics
are equal, bit for bit, on the CPU.

One training at a time writes a models/ folder: it holds an OS lock on a file there for
its whole life, and any other training into the folder is refused while it does.
"""

import fcntl
import io
import logging
import os
import random
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.plugins.io import TorchCheckpointIO

from dlpipe import files
from dlpipe.data.arrays import Loader
from dlpipe.errors import ConfigError
from dlpipe.paths import Outputs
from dlpipe.tracking import client as tracking
from dlpipe.training.checkpoints import load_checkpoint

log = logging.getLogger(__name__)

# The checkpoint's entry naming the MLflow run that wrote it (see RunId).
RUN_ID_KEY = "dlpipe_run_id"


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
    whose last checkpoint it wrote itself: one killed before its first checkpoint finds
    the previous training's there, which it must not continue.
    """
    if not out.resume_file.exists():
        return None
    record = files.read_json(out.resume_file)
    if (record.get("config_hash"), record.get("data_hash")) != (config_hash, data_hash):
        log.info(f"{out.resume_file} is of a training with other settings or data: starting anew")
        return None
    run_id = record["run_id"]
    # None: recorded in another tracking store.
    if tracking.run_status(client, run_id) in (None, "FINISHED"):
        return None
    checkpoint = _checkpoint(out.last_ckpt)
    if checkpoint is None or checkpoint.get(RUN_ID_KEY) != run_id:
        log.info(f"run {run_id} stopped before its first checkpoint: starting anew")
        return None
    return Resumption(run_id, out.last_ckpt, int(checkpoint["epoch"]) + 1)


def _checkpoint(path: Path) -> dict | None:
    """The last checkpoint, when there is one; a damaged one is an error saying what to do."""
    if not path.exists():
        return None
    return load_checkpoint(path, "run again with resume=false to start anew")


@contextmanager
def holding(out: Outputs) -> Iterator[None]:
    """Hold `out.models` for one training, or refuse if a live process holds it already.

    Two trainings writing one folder would overwrite each other's checkpoints and records.
    The lock is the kernel's (flock), so it goes with the process that holds it, however
    that ends: a training killed with SIGKILL leaves no stale lock behind. The lock file
    holds the owner's process id, to name it; DVC ignores it (.dvcignore).
    """
    try:
        out.models.mkdir(parents=True, exist_ok=True)
        handle = open(out.lock_file, "a+", encoding="utf-8")  # noqa: SIM115 (closed below)
    except OSError as exc:
        why = f"cannot write into {out.models} ({exc.strerror}): make it writable"
        raise ConfigError(why) from exc
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ConfigError(_busy(out, handle)) from None
        _write_owner(handle, str(os.getpid()))
        try:
            yield
        finally:
            _write_owner(handle, "")  # before the kernel releases the lock, as the file closes


def _write_owner(handle, pid: str) -> None:
    handle.seek(0)
    handle.truncate()
    handle.write(pid)
    handle.flush()


def _busy(out: Outputs, handle) -> str:
    handle.seek(0)
    owner = handle.read().strip()
    process = f"process {owner}" if owner else "another process"
    return (
        f"{out.models}/ is in use by {process}, which is training into it: wait for it to "
        "end, or train in another copy of the project"
    )


class RunId(Callback):
    """Write the id of the MLflow run training into each checkpoint it saves, so that a
    later training knows whose checkpoint it finds (see `find`)."""

    def on_save_checkpoint(self, trainer, module, checkpoint: dict) -> None:
        checkpoint[RUN_ID_KEY] = trainer.logger.version


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

    def __init__(self, loader: Loader):
        self.loader = loader

    def on_train_epoch_start(self, trainer, module) -> None:
        self.loader.epoch = trainer.current_epoch


class AtomicCheckpointIO(TorchCheckpointIO):
    """Write each checkpoint beside its final name and rename it into place, so a kill
    mid-write leaves the previous checkpoint whole (Lightning's own writer renames from
    the system's temporary folder, which may be another disk: a copy, not a rename)."""

    def save_checkpoint(self, checkpoint: dict, path, storage_options=None) -> None:
        # Serialised in memory first, as Lightning's own writer does: torch's file writer
        # turns a full disk into an obscure RuntimeError, Python's into an OSError, which
        # atomic_path says in one line.
        serialised = io.BytesIO()
        torch.save(checkpoint, serialised)
        with files.atomic_path(Path(path)) as tmp:
            tmp.write_bytes(serialised.getbuffer())
