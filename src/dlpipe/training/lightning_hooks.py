"""Lightning plumbing: epoch metrics to MLflow, a history for plots, plain per-epoch lines
or a progress bar per epoch, the model's size in one line, and which epoch is the best."""

import logging
import math
import time

from lightning.pytorch.callbacks import Callback, TQDMProgressBar
from lightning.pytorch.callbacks.progress.tqdm_progress import convert_inf
from lightning.pytorch.loggers.logger import Logger

from dlpipe.data.shard_loader import ShardLoader
from dlpipe.tracking import client as tracking

log = logging.getLogger(__name__)


class MlflowEpochLogger(Logger):
    """Logs what the task logs per epoch to one existing MLflow run, with the epoch as step.

    The run is opened and closed by dlpipe.tracking.client, not here, so that a failure before or
    after fit still ends the run with the right status. With `echo`, each finished epoch is
    also one plain log line: for logs and CI, where a progress bar would be noise.
    """

    def __init__(self, echo: bool = False, max_epochs: int | None = None):
        super().__init__()
        self.echo, self.max_epochs = echo, max_epochs
        self.client: tracking.Client | None = None
        self.run_id: str | None = None
        self.logged: dict[str, int] = {}
        self.history: dict[int, dict[str, float]] = {}
        self._epoch_started = time.perf_counter()

    def attach(
        self, client: tracking.Client, run_id: str, logged: dict[str, int] | None = None
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

    def echo_epoch(self, epoch: int) -> None:
        """Say epoch `epoch`'s metrics in one line, where echo is on (see EpochEcho)."""
        row = self.history.get(epoch)
        if not self.echo or not row:
            return
        shown = " ".join(f"{key} {value:.4f}" for key, value in sorted(row.items()))
        seconds, self._epoch_started = (
            time.perf_counter() - self._epoch_started,
            time.perf_counter(),
        )
        log.info(f"epoch {epoch + 1}/{self.max_epochs} {shown} ({seconds:.1f}s)")


class EpochEcho(Callback):
    """The logger's line for each finished epoch, said once everything of that epoch is
    done, its checkpoint saved too (at the next epoch's start, or the training's end): a
    training killed after the line resumes after that epoch."""

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        if trainer.current_epoch > 0:
            self._say(trainer, trainer.current_epoch - 1)

    def on_train_end(self, trainer, pl_module) -> None:
        self._say(trainer, trainer.current_epoch - 1)

    @staticmethod
    def _say(trainer, epoch: int) -> None:
        for logger in trainer.loggers:
            if isinstance(logger, MlflowEpochLogger):
                logger.echo_epoch(epoch)


class ReadersStopped(Callback):
    """Stops the reading processes of streamed validation data when a validation ends
    part way through its data (Lightning's sanity check takes two batches), so that they
    do not hold their buffers through the training epoch that follows."""

    def on_validation_end(self, trainer, pl_module) -> None:
        loaders = trainer.val_dataloaders
        for loader in loaders if isinstance(loaders, list | tuple) else [loaders]:
            if isinstance(loader, ShardLoader):
                loader.close()


class EpochProgressBar(TQDMProgressBar):
    """On a terminal, one bar per epoch, numbered as the plain log lines number them
    (`epoch 3/40`), left on screen with that epoch's train and val metrics.

    Lightning's own bar shows the logger's version and 0-based epochs, and no metric the
    task logs per epoch: those exist only once the epoch ends.
    """

    def __init__(self):
        super().__init__(leave=True)
        self._ended = None  # the bar of the epoch that just ended, until its metrics are in

    @property
    def train_description(self) -> str:
        return f"epoch {self.trainer.current_epoch + 1}/{self.trainer.max_epochs}"

    def get_metrics(self, trainer, pl_module) -> dict:
        """Nothing while an epoch runs: its metrics are computed when it ends."""
        return {}

    def on_train_start(self, *args) -> None:
        """No bar yet: each epoch opens its own."""

    def on_train_epoch_start(self, trainer, *args) -> None:
        self._close_ended(trainer)
        self.train_progress_bar = self.init_train_tqdm()
        self.train_progress_bar.reset(total=convert_inf(self.total_train_batches))

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        # The task logs the epoch's train metrics after the callbacks' hook: the bar is
        # closed with them when the next epoch starts, or when training ends.
        self._ended = self.train_progress_bar

    def on_train_end(self, trainer, *args) -> None:
        self._close_ended(trainer)
        super().on_train_end(trainer, *args)

    def _close_ended(self, trainer) -> None:
        if self._ended is None:
            return
        metrics = sorted(trainer.callback_metrics.items())
        shown = {key: f"{float(value):.4f}" for key, value in metrics if _per_epoch(key)}
        self._ended.set_postfix(shown)
        self._ended.close()
        self._ended = None


def _per_epoch(key: str) -> bool:
    return key.startswith(("train/", "val/"))


class ParameterCount(Callback):
    """The model's size in one log line, instead of Lightning's table of its layers: a
    sweep would print that table once per job."""

    def on_fit_start(self, trainer, pl_module) -> None:
        parameters = list(pl_module.parameters())
        total = sum(p.numel() for p in parameters)
        trainable = sum(p.numel() for p in parameters if p.requires_grad)
        log.info(f"model: {total:,} parameters, {trainable:,} trainable")


# What BestEpoch ranks each epoch by: the checkpoint kept as best has the highest.
RANK = "checkpoint/rank"


class BestEpoch(Callback):
    """Ranks each epoch against the best before it by `monitor`, ties decided by
    `tiebreak` (each with its mode), as one number, `checkpoint/rank`, among the epoch's
    metrics: what Lightning's ModelCheckpoint (here) and Ray's checkpoint manager (on Ray
    Train) keep the highest of. Both compare one metric, and on a tie keep the first epoch:
    with val/acc at 1.0 on a small validation split, an early, barely fitted one.

    A new best epoch ranks one above the best before it, any other half below that, so none
    ties with the best. Its state (the best values) travels in the checkpoints, so a resumed
    training ranks on as an uninterrupted one.
    """

    def __init__(self, monitor: str, mode: str, tiebreak: str, tiebreak_mode: str):
        self.order = ((monitor, mode), (tiebreak, tiebreak_mode))
        self.best: list[float] | None = None  # the best epoch's values, in `order`
        self.found = 0  # how many times a better epoch came

    @property
    def state_key(self) -> str:
        return self._generate_state_key(order=self.order)

    @property
    def score(self) -> float:
        """The monitor's value at the best epoch so far."""
        return self.best[0]

    def on_validation_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking:
            return
        import torch

        values = [self._value(trainer.callback_metrics, name) for name, _ in self.order]
        if self.best is None or self._key(values) > self._key(self.best):
            self.best, self.found = values, self.found + 1
            rank = float(self.found)
        else:
            rank = self.found - 0.5
        trainer.callback_metrics[RANK] = torch.tensor(rank)

    def _key(self, values: list[float]) -> tuple[float, ...]:
        """`values` as a tuple that is larger the better they are; NaN is the worst."""
        return tuple(
            -math.inf if math.isnan(v) else (v if mode == "max" else -v)
            for v, (_, mode) in zip(values, self.order, strict=True)
        )

    @staticmethod
    def _value(metrics: dict, name: str) -> float:
        if name not in metrics:
            from dlpipe.errors import ConfigError

            raise ConfigError(
                f"the best epoch is chosen by {name}, which the task does not log: set "
                f"trainer.checkpoint_monitor or trainer.checkpoint_tiebreak to one it logs"
            )
        return float(metrics[name])

    def state_dict(self) -> dict:
        return {"best": self.best, "found": self.found}

    def load_state_dict(self, state_dict: dict) -> None:
        self.best, self.found = state_dict["best"], state_dict["found"]
