"""Multi-class classification: cross-entropy loss, accuracy from torchmetrics."""

import lightning.pytorch as pl
import torch
from torch import nn
from torch.nn import functional as F
from torchmetrics.classification import MulticlassAccuracy

from dlpipe.optim import build_optimizer


class ClassificationTask(pl.LightningModule):
    """Train `model` (logits out) on integer labels; logs train/ and val/ loss and acc per epoch."""

    def __init__(self, model: nn.Module, num_classes: int, optim: dict):
        super().__init__()
        self.model = model
        self.optim = dict(optim)
        # validate_args=False: the inputs come from our own prepared data; the checks cost per step.
        self.train_acc = MulticlassAccuracy(num_classes, average="micro", validate_args=False)
        self.val_acc = MulticlassAccuracy(num_classes, average="micro", validate_args=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def training_step(
        self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int
    ) -> torch.Tensor:
        x, y = batch
        logits = self.model(x)
        loss = F.cross_entropy(logits, y)
        self.train_acc.update(logits, y)
        self.log("train/loss", loss, on_step=False, on_epoch=True, batch_size=len(y))
        self.log("train/acc", self.train_acc, on_step=False, on_epoch=True)
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        x, y = batch
        logits = self.model(x)
        self.val_acc.update(logits, y)
        self.log("val/loss", F.cross_entropy(logits, y), on_epoch=True, batch_size=len(y))
        self.log("val/acc", self.val_acc, on_epoch=True)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        settings = {key: value for key, value in self.optim.items() if key != "name"}
        return build_optimizer(self.parameters(), self.optim["name"], **settings)
