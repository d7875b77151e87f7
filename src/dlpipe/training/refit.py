"""Refit (trainer.refit=true): once validation has chosen the best epoch, train the model
anew on the training and validation splits together for that many epochs, and keep that
model as models/best.ckpt, the one evaluate tests and the registry registers.

On small data the validation split is a share of the samples the model never learns from;
the chosen number of epochs is what validation can still say. The refit model itself has
no validation score: the run's best score stays that of the chosen epoch, and the run
says it was refit and on how many epochs (tag `dlpipe.refit_epochs`, run.json's
`refit_epochs`).
"""

import copy
import logging
import warnings

import torch
from omegaconf import DictConfig, OmegaConf

from dlpipe.data.arrays import ArrayLoader, Loader, PreparedData
from dlpipe.data.shard_loader import ShardLoader, streaming
from dlpipe.errors import ConfigError
from dlpipe.paths import Outputs
from dlpipe.tasks.kinds import TaskKind
from dlpipe.training.checkpoints import load_checkpoint
from dlpipe.training.trainer import fit_settings, seed_all

log = logging.getLogger(__name__)
TAG = "dlpipe.refit_epochs"


def check_refit(cfg: DictConfig, kind: TaskKind) -> None:
    """Refit needs an epoch chosen on validation, in this process."""
    if not cfg.trainer.refit:
        return
    if not kind.keeps_best:
        raise ConfigError(
            f"trainer.refit=true needs a task that keeps its best epoch; {kind.name} trains "
            "all its epochs: set trainer.refit=false"
        )
    if cfg.cluster.name == "ray":
        raise ConfigError("trainer.refit=true refits in one process: use cluster=local")


def chosen_epochs(out: Outputs) -> int:
    """How many epochs the checkpoint chosen as best had trained."""
    return int(load_checkpoint(out.best_ckpt, "train again")["epoch"]) + 1


def refit(cfg: DictConfig, data: PreparedData, build, out: Outputs) -> int:
    """Train a fresh model on train+val for the chosen epochs, saved as best.ckpt.

    Args:
        cfg: the training's config (monitors filled in).
        data: the prepared training and validation splits.
        build: build(cfg, steps_per_epoch) -> the task (a LightningModule) around a new
            model, started as the training's was.
        out: where the chosen best.ckpt is, and the refit one goes.

    Returns:
        The number of epochs refit.
    """
    import lightning.pytorch as pl

    from dlpipe.training.augment import augmentation
    from dlpipe.training.resume import AtomicCheckpointIO

    epochs = chosen_epochs(out)
    cfg = copy.deepcopy(cfg)
    OmegaConf.update(cfg, "trainer.max_epochs", epochs)
    seed_all(cfg.seed)
    loader = _train_and_val(cfg, data)
    log.info(f"refitting on train+val ({loader.samples} samples) for {epochs} epochs")
    trainer = pl.Trainer(
        **fit_settings(cfg.trainer, len(loader)),
        accelerator=cfg.trainer.accelerator,
        devices=cfg.trainer.devices,
        # Its epochs are not the run's: the run's curves stay those of the training.
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        callbacks=augmentation(cfg, data.meta),
        plugins=[AtomicCheckpointIO()],
        default_root_dir=out.models,
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*val_dataloader.*")
        trainer.fit(build(cfg, len(loader)), loader)
    trainer.save_checkpoint(out.best_ckpt, weights_only=True)
    return epochs


def _train_and_val(cfg: DictConfig, data: PreparedData) -> Loader:
    """The training and validation samples as one training split, shuffled per epoch."""
    batch = cfg.data.batch_size
    if data.streamed("train"):
        stream = streaming(cfg.data)
        return ShardLoader(data.folder, data.meta, ("train", "val"), batch, stream, True, cfg.seed)
    (x_train, y_train), (x_val, y_val) = data.splits["train"], data.splits["val"]
    x, y = torch.cat([x_train, x_val]), torch.cat([y_train, y_val])
    return ArrayLoader(x, y, batch, shuffle=True, seed=cfg.seed)
