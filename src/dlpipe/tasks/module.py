"""The LightningModule of every task trained by gradient descent on one loss."""

import lightning.pytorch as pl
import torch
from torch import nn

from dlpipe.errors import TrainingError
from dlpipe.tasks.kinds import Setup
from dlpipe.tasks.objectives import Batch, Objective
from dlpipe.training.optim import build_optimizer, build_schedule


class Task(pl.LightningModule):
    """Fit `model` to `objective`; logs train/ and val/ loss and the objective's metrics per
    epoch, and train/lr.

    Each step only keeps its loss and what the objective asks for; metrics are computed
    when the epoch ends.
    """

    def __init__(self, model: nn.Module, objective: Objective, optim: dict, schedule: dict):
        """`optim` and `schedule` are the settings of build_optimizer and build_schedule."""
        super().__init__()
        self.model = model
        self.objective = objective
        self.optim = dict(optim)
        self.schedule = dict(schedule)
        self._seen: dict[str, list[tuple[torch.Tensor, ...]]] = {"train": [], "val": []}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def _step(self, batch: Batch, stage: str) -> torch.Tensor:
        x, y = batch
        outputs = self.model(x)
        loss = self.objective.loss(outputs, x, y)
        kept = self.objective.keep(outputs.detach(), x, y)
        self._seen[stage].append((loss.detach(), torch.tensor(float(len(x))), *kept))
        return loss

    def _log_epoch(self, stage: str) -> None:
        if not self._seen[stage]:
            return
        losses, sizes, *kept = zip(*self._seen[stage], strict=True)
        self._seen[stage] = []
        losses, sizes = torch.stack(losses), torch.stack(sizes)
        # Data-parallel workers each train on a shard: their train metrics are averaged.
        # (Every worker validates on the whole validation split: those agree already.)
        sync = self.trainer.world_size > 1
        self.log(f"{stage}/loss", (losses * sizes).sum() / sizes.sum(), sync_dist=sync)
        for name, value in self.objective.metrics(*(torch.cat(k) for k in kept)).items():
            self.log(f"{stage}/{name}", value, sync_dist=sync)
        if stage == "train":
            self.log("train/lr", self.trainer.optimizers[0].param_groups[0]["lr"], sync_dist=sync)
        self._check_finite(losses, stage)

    def _check_finite(self, losses: torch.Tensor, stage: str) -> None:
        """Stop at the first epoch whose loss is NaN or infinite: nothing after it can recover."""
        if not torch.isfinite(losses).all():
            bad = losses[~torch.isfinite(losses)][0].item()
            raise TrainingError(
                f"{stage}/loss became {bad} in epoch {self.current_epoch + 1}: training "
                f"diverged; lower optim.lr (now {self.optim['lr']}) or check the data"
            )

    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        self._step(batch, "val")

    def on_validation_epoch_start(self) -> None:
        # The epoch's training metrics reach the logger with its validation metrics, before
        # the epoch's checkpoint is saved: a training killed after the checkpoint (and so
        # resumed after this epoch) never lacks them.
        if not self.trainer.sanity_checking:
            self._log_epoch("train")

    def on_train_epoch_end(self) -> None:
        self._log_epoch("train")  # without validation; else done already

    def on_validation_epoch_end(self) -> None:
        self._log_epoch("val")

    def configure_optimizers(self) -> dict:
        optimizer = build_optimizer(self.parameters(), **self.optim)
        scheduler = build_schedule(optimizer, **self.schedule)
        if scheduler is None:
            return {"optimizer": optimizer}
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }


def one_loss(setup: Setup, objective: Objective) -> Task:
    """The LightningModule of a task trained by gradient descent on one loss."""
    return Task(setup.model, objective, setup.optim, setup.schedule)
