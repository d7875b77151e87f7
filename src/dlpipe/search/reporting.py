"""A search trial's epochs, reported to Ray Tune (search.runner=ray) for its scheduler to
judge: the checkpoint monitor after each epoch, under one key whatever the task's metric."""

import lightning.pytorch as pl
from ray import tune
from ray.tune.integration.ray_train import TuneReportCallback

from dlpipe.search.study import SCORE


class EpochToTune(pl.Callback):
    """Reports a training in the trial's own process: each validated epoch's monitor."""

    def __init__(self, monitor: str) -> None:
        self.monitor = monitor

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        value = trainer.callback_metrics.get(self.monitor)
        if value is not None:  # validated this epoch
            tune.report({SCORE: float(value), "epoch": trainer.current_epoch})


class WorkersToTune(TuneReportCallback):
    """Reports a Ray Train training: worker 0's metrics of each epoch, its monitor as the
    score."""

    def __init__(self, monitor: str) -> None:
        super().__init__()
        self.monitor = monitor

    def after_report(self, run_context, metrics: list[dict], checkpoint) -> None:
        first = {**metrics[0], SCORE: metrics[0][self.monitor]}
        super().after_report(run_context, [first, *metrics[1:]], checkpoint)
