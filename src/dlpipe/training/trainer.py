"""What a Lightning Trainer is set up with wherever it runs: in this process (train) or
on each Ray Train worker (ray_train), so that both fit alike.

Lightning is imported inside the functions that build its objects: importing this module
stays cheap for the config checks that run before a training starts.
"""

import logging
import warnings

from omegaconf import DictConfig


def fit_settings(t: DictConfig, steps_per_epoch: int) -> dict:
    """Trainer settings from conf/trainer that do not depend on where training runs."""
    return {
        "precision": t.precision,
        "max_epochs": t.max_epochs,
        "gradient_clip_val": t.gradient_clip_val,
        "gradient_clip_algorithm": t.gradient_clip_algorithm,
        "deterministic": True,
        # Metrics are logged per epoch: gathering step metrics for the logger every step
        # would cost a small model a tenth of its throughput for nothing.
        "log_every_n_steps": steps_per_epoch,
    }


def early_stopping(t: DictConfig) -> list:
    """The early stopping callback, in a list; empty when trainer.early_stopping or its
    patience is null: then every one of max_epochs is trained."""
    from lightning.pytorch.callbacks import EarlyStopping

    stopping = t.early_stopping
    if stopping is None or stopping.patience is None:
        return []
    return [EarlyStopping(monitor=stopping.monitor, mode=stopping.mode, patience=stopping.patience)]


def best_epoch(t: DictConfig):
    """The callback ranking each epoch by trainer.checkpoint_monitor, ties decided by
    trainer.checkpoint_tiebreak: the checkpoint kept as best is the highest ranked."""
    from dlpipe.training.lightning_hooks import BestEpoch

    return BestEpoch(
        t.checkpoint_monitor, t.checkpoint_mode, t.checkpoint_tiebreak, t.checkpoint_tiebreak_mode
    )


def quiet_lightning() -> None:
    """Drop what Lightning prints on every run but says nothing about this one."""
    # Device availability lines and product tips.
    logging.getLogger("lightning.pytorch.utilities.rank_zero").setLevel(logging.WARNING)
    # Lightning 2.6 calls a torch pytree API that torch 2.13 deprecates.
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")
    # Re-running into models/ is the normal case: DVC tracks these fixed paths.
    warnings.filterwarnings("ignore", message=r"Checkpoint directory .* exists and is not empty")


def seed_all(seed: int) -> None:
    """Seed Python, NumPy and torch before the model exists: its initial weights depend on it."""
    from lightning.fabric.utilities.seed import seed_everything

    seed_everything(seed, workers=True, verbose=False)


def worker_threads(cfg: DictConfig) -> int:
    """Torch threads of a Ray Train worker: the CPUs it reserves."""
    return max(1, int(cfg.cluster.resources_per_worker.get("CPU", 1)))
