"""Multi-class classification: cross-entropy loss, accuracy from torchmetrics."""

import lightning.pytorch as pl
import torch
from torch import nn
from torch.nn import functional as F
from torchmetrics import MeanMetric
from torchmetrics.classification import MulticlassAccuracy

from dlpipe.errors import TrainingError
from dlpipe.optim import build_optimizer, build_schedule


class ClassificationTask(pl.LightningModule):
    """Train `model` (logits out) on integer labels; logs train/ and val/ loss and acc per epoch.

    Each step only keeps its loss, predicted classes and targets; the torchmetrics objects
    see the whole epoch at its end. Per-step `self.log` calls or metric updates cost more
    than a small model's whole step (see benchmarks/overhead.py).
    """

    def __init__(self, model: nn.Module, num_classes: int, optim: dict, schedule: dict):
        """`optim` and `schedule` are the settings of build_optimizer and build_schedule."""
        super().__init__()
        self.model = model
        self.optim = dict(optim)
        self.schedule = dict(schedule)
        # validate_args=False: the inputs come from our own prepared data; the checks cost per step.
        self.metrics = nn.ModuleDict(
            {
                f"{stage}_{name}": metric
                for stage in ("train", "val")
                for name, metric in (
                    ("loss", MeanMetric(nan_strategy="disable")),
                    ("acc", MulticlassAccuracy(num_classes, average="micro", validate_args=False)),
                )
            }
        )
        self._seen: dict[str, list[tuple[torch.Tensor, ...]]] = {"train": [], "val": []}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def _step(self, batch: tuple[torch.Tensor, torch.Tensor], stage: str) -> torch.Tensor:
        x, y = batch
        logits = self.model(x)
        loss = F.cross_entropy(logits, y)
        self._seen[stage].append((loss.detach(), logits.detach().argmax(1), y))
        return loss

    def _log_epoch(self, stage: str) -> None:
        if not self._seen[stage]:
            return
        losses, predicted, targets = zip(*self._seen[stage], strict=True)
        self._seen[stage] = []
        sizes = torch.tensor([len(batch) for batch in targets], dtype=torch.float32)
        self.metrics[f"{stage}_loss"].update(torch.stack(losses), weight=sizes)
        self.metrics[f"{stage}_acc"].update(torch.cat(predicted), torch.cat(targets))
        for name in ("loss", "acc"):
            metric = self.metrics[f"{stage}_{name}"]
            self.log(f"{stage}/{name}", metric.compute())
            metric.reset()
        if stage == "train":
            self.log("train/lr", self.trainer.optimizers[0].param_groups[0]["lr"])
        self._check_finite(torch.stack(losses), stage)

    def _check_finite(self, losses: torch.Tensor, stage: str) -> None:
        """Stop at the first epoch whose loss is NaN or infinite: nothing after it can recover."""
        if not torch.isfinite(losses).all():
            bad = losses[~torch.isfinite(losses)][0].item()
            raise TrainingError(
                f"{stage}/loss became {bad} in epoch {self.current_epoch + 1}: training "
                f"diverged; lower optim.lr (now {self.optim['lr']}) or check the data"
            )

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int):
        return self._step(batch, "train")

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._step(batch, "val")

    def on_train_epoch_end(self) -> None:
        self._log_epoch("train")

    def on_validation_epoch_end(self) -> None:
        self._log_epoch("val")

    def configure_optimizers(self) -> dict:
        optimizer = build_optimizer(self.parameters(), **self.optim)
        schedule = build_schedule(optimizer, **self.schedule)
        if schedule is None:
            return {"optimizer": optimizer}
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}
