"""Adversarial training of a GAN: the discriminator learns to tell real samples from
generated ones, then the generator learns to make the discriminator call its samples real
(the non-saturating loss of Goodfellow et al. 2014).

Both steps run on every batch, with an optimiser each (Adam with beta1 = 0.5, the usual
choice for GANs, at optim.lr). Validation measures how often the discriminator is right
on held-out real samples and fresh generated ones (`val/d_acc`; 0.5 means it cannot tell).
"""

import lightning.pytorch as pl
import torch
from torch.nn import functional as F

from dlpipe.errors import ConfigError, TrainingError
from dlpipe.tasks.kinds import Setup
from dlpipe.tasks.objectives import Batch


class AdversarialTask(pl.LightningModule):
    def __init__(self, model, optim: dict):
        super().__init__()
        self.model = model
        self.optim = dict(optim)
        self.automatic_optimization = False
        self._seen: dict[str, list[torch.Tensor]] = {"train": [], "val": []}

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.model(z)

    def _noise(self, count: int) -> torch.Tensor:
        return torch.randn(count, self.model.latent, device=self.device)

    def _judge(self, samples: torch.Tensor, real: bool) -> torch.Tensor:
        """The discriminator's loss on `samples`, labelled real or generated."""
        scores = self.model.discriminator(samples)[:, 0]
        target = torch.ones_like(scores) if real else torch.zeros_like(scores)
        return F.binary_cross_entropy_with_logits(scores, target)

    def training_step(self, batch: Batch, batch_idx: int) -> None:
        x, _ = batch
        d_optimiser, g_optimiser = self.optimizers()
        fake = self.model(self._noise(len(x)))
        d_loss = self._judge(x, real=True) + self._judge(fake.detach(), real=False)
        d_optimiser.zero_grad()
        self.manual_backward(d_loss)
        d_optimiser.step()
        g_loss = self._judge(fake, real=True)
        g_optimiser.zero_grad()
        self.manual_backward(g_loss)
        g_optimiser.step()
        self._seen["train"].append(torch.stack([d_loss.detach(), g_loss.detach()]))

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        x, _ = batch
        fake = self.model(self._noise(len(x)))
        right = torch.cat(
            [self.model.discriminator(x)[:, 0] > 0, self.model.discriminator(fake)[:, 0] <= 0]
        )
        losses = torch.stack(
            [self._judge(x, True) + self._judge(fake, False), self._judge(fake, True)]
        )
        self._seen["val"].append(torch.cat([losses, right.float().mean()[None]]))

    def _log_epoch(self, stage: str) -> None:
        if not self._seen[stage]:
            return
        means = torch.stack(self._seen[stage]).mean(0)
        self._seen[stage] = []
        self.log(f"{stage}/d_loss", means[0])
        self.log(f"{stage}/loss", means[1])  # the generator's: what the task is about
        if stage == "val":
            self.log("val/d_acc", means[2])
        if not torch.isfinite(means[:2]).all():
            raise TrainingError(
                f"{stage} losses became {means[:2].tolist()} in epoch {self.current_epoch + 1}: "
                f"training diverged; lower optim.lr (now {self.optim['lr']})"
            )

    def on_train_epoch_end(self) -> None:
        self._log_epoch("train")

    def on_validation_epoch_end(self) -> None:
        self._log_epoch("val")

    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        settings = {"lr": self.optim["lr"], "betas": (0.5, 0.999)}
        return [
            torch.optim.Adam(self.model.discriminator.parameters(), **settings),
            torch.optim.Adam(self.model.generator.parameters(), **settings),
        ]


def adversarial(setup: Setup, objective: None) -> AdversarialTask:
    """A GAN's two networks trained against each other, at a constant rate."""
    if setup.schedule["name"] != "none" or setup.schedule["warmup_epochs"]:
        raise ConfigError(f"model '{setup.label}' trains at a constant rate: set schedule=none")
    return AdversarialTask(setup.model, setup.optim)
