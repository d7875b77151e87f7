"""Lightning plumbing: epoch metrics to MLflow, a history for plots, plain per-epoch lines."""

import logging
import time

from lightning.pytorch.loggers.logger import Logger
from mlflow import MlflowClient

from dlpipe import tracking

log = logging.getLogger(__name__)


class MlflowEpochLogger(Logger):
    """Logs what the task logs per epoch to one existing MLflow run, with the epoch as step.

    The run is opened and closed by dlpipe.tracking, not here, so that a failure before or
    after fit still ends the run with the right status. With `echo`, each finished epoch is
    also one plain log line: for logs and CI, where a progress bar would be noise.
    """

    def __init__(self, echo: bool = False, max_epochs: int | None = None):
        super().__init__()
        self.echo, self.max_epochs = echo, max_epochs
        self.client: MlflowClient | None = None
        self.run_id: str | None = None
        self.logged: dict[str, int] = {}
        self.history: dict[int, dict[str, float]] = {}
        self._epoch_started = time.perf_counter()

    def attach(
        self, client: MlflowClient, run_id: str, logged: dict[str, int] | None = None
    ) -> None:
        """Log into `run_id`, leaving out each metric's steps up to `logged[metric]`: those
        a resumed training repeats, which the run already holds."""
        self.client, self.run_id = client, run_id
        self.logged = logged or {}

    @property
    def name(self) -> str:
        return "mlflow"

    @property
    def version(self) -> str | None:
        return self.run_id

    def log_hyperparams(self, params, *args, **kwargs) -> None:
        """Params are the flattened config, logged when the run opens."""

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        values = dict(metrics)
        epoch = int(values.pop("epoch", step or 0))
        self.history.setdefault(epoch, {}).update(values)
        fresh = {key: v for key, v in values.items() if epoch > self.logged.get(key, -1)}
        tracking.log_metrics(self.client, self.run_id, fresh, epoch)
        # An epoch's train metrics are logged last, after its validation.
        if self.echo and any(key.startswith("train/") for key in values):
            self._echo(epoch)

    def _echo(self, epoch: int) -> None:
        row = self.history[epoch]
        shown = " ".join(f"{key} {value:.4f}" for key, value in sorted(row.items()))
        seconds, self._epoch_started = (
            time.perf_counter() - self._epoch_started,
            time.perf_counter(),
        )
        log.info(f"epoch {epoch + 1}/{self.max_epochs} {shown} ({seconds:.1f}s)")
