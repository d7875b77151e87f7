"""Lightning plumbing: epoch metrics to MLflow (and a history for plots), plain progress lines."""

import logging
import time

import lightning.pytorch as pl
from lightning.pytorch.loggers.logger import Logger
from mlflow import MlflowClient

from dlpipe import tracking

log = logging.getLogger(__name__)


class MlflowEpochLogger(Logger):
    """Logs what the task logs per epoch to one existing MLflow run, with the epoch as step.

    The run is opened and closed by dlpipe.tracking, not here, so that a failure before or
    after fit still ends the run with the right status.
    """

    def __init__(self, client: MlflowClient, run_id: str):
        super().__init__()
        self.client, self.run_id = client, run_id
        self.history: dict[int, dict[str, float]] = {}

    @property
    def name(self) -> str:
        return "mlflow"

    @property
    def version(self) -> str:
        return self.run_id

    def log_hyperparams(self, params, *args, **kwargs) -> None:
        """Params are the flattened config, logged when the run opens."""

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        values = dict(metrics)
        epoch = int(values.pop("epoch", step or 0))
        self.history.setdefault(epoch, {}).update(values)
        tracking.log_metrics(self.client, self.run_id, values, epoch, int(time.time() * 1000))

    def epochs(self) -> list[dict[str, float]]:
        """One row per epoch: {"epoch": k, "train/loss": ..., "val/acc": ...}."""
        return [{"epoch": epoch, **self.history[epoch]} for epoch in sorted(self.history)]


class EpochLines(pl.Callback):
    """One plain line per epoch, for logs and CI where a progress bar would be noise."""

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._started = time.perf_counter()

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        shown = " ".join(
            f"{key} {float(value):.4f}" for key, value in sorted(trainer.callback_metrics.items())
        )
        seconds = time.perf_counter() - self._started
        log.info(f"epoch {trainer.current_epoch + 1}/{trainer.max_epochs} {shown} ({seconds:.1f}s)")
