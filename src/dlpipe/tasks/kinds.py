"""One descriptor per task: what it optimises, logs, may be watched by, is tested and judged
by, and whether it serves or trains under Ray Train.

Every part of dlpipe that depends on the task (the training's LightningModule and its
checkpointing, the config's monitor check, evaluate's metrics and plots, the registry's
champion metric, serving) reads it from the task's `TaskKind`, never from a table of its
own. A user's task is a function of its settings returning a `TaskKind`, usually a
built-in one with its objective replaced (see dlpipe.tasks.configured).

This module imports no torch: the config check reads the monitors before torch loads.
The built-in tasks' builders, which need torch, are named by `_target_` and imported
when called.
"""

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from dlpipe.config.schema import targets
from dlpipe.errors import ConfigError
from dlpipe.record import RunRecord

if TYPE_CHECKING:
    import lightning.pytorch as pl
    import torch

# Which way a metric is better: lower (a loss, an error) or higher (an accuracy).
Mode = Literal["min", "max"]


@dataclass(frozen=True)
class Setup:
    """What building a training's objective and LightningModule may read."""

    model: "torch.nn.Module"
    label: str  # the model's name in runs
    meta: dict  # the prepared data's meta.json: classes, heads, shapes
    optim: dict  # settings of dlpipe.training.optim.build_optimizer
    schedule: dict  # settings of dlpipe.training.optim.build_schedule
    weights: dict[str, float]  # each head's weight in a multi-task loss


@dataclass(frozen=True)
class Scoring:
    """What scoring a trained model on the test split may read (see dlpipe.evaluation.scoring)."""

    model: "torch.nn.Module"
    record: RunRecord  # models/run.json
    data: Any  # dlpipe.data.arrays.PreparedData, with the splits `TaskKind.splits` names
    folder: Path  # where its plots go
    batch_size: int
    seed: int
    samples: int  # evaluate.samples: how many a generative model draws
    classifier: Any  # evaluate.classifier's model, loaded on demand: classifier() -> model
    # data.stream's (workers, buffer): how a test split prepared in shards is read.
    stream: tuple[int, int] = (0, 1)


def _later(target: str) -> Callable:
    """The function at `target`, imported when first called (dlpipe's own parts are named
    by `_target_` as a user's are): the descriptors import nothing that needs torch."""

    def call(*args: Any, **kwargs: Any) -> Any:
        return targets.load(target)(*args, **kwargs)

    call.__qualname__ = target
    return call


# The LightningModule of a task trained by gradient descent on one loss (a Task).
ONE_LOSS = _later("dlpipe.tasks.module.one_loss")


@dataclass(frozen=True)
class TaskKind:
    """A task, as every stage sees it.

    Attributes:
        name: the task of the data or model it trains on (classification, regression, ...);
            what the run record holds and serving reads.
        objective: objective(setup) -> the loss and epoch metrics (dlpipe.tasks.objectives
            .Objective); None for a task whose module needs none (a GAN's).
        logged: the metrics the objective logs per epoch besides the loss, as train/<m>
            and val/<m> (per head, val/<head>/<m>, for multi-task data).
        test: test(scoring) -> (test/* metrics, plots written), for evaluate.
        monitor, mode: the validation metric a training of it is watched by when
            trainer.checkpoint_monitor (trainer.early_stopping.monitor) is null, and which
            way it is better.
        tiebreak: the validation metric that decides between epochs tied on the monitor
            when trainer.checkpoint_tiebreak is null (its loss: lower is better).
        champion, champion_mode: the test metric (without test/) its registered versions
            are compared on when registry.metric is null, and which way it is better;
            None: it is not registered.
        servable: whether its model answers predictions (dlpipe predict, pyfunc).
        distributed: whether Ray Train can run it on several workers.
        module: module(setup, objective) -> the LightningModule that trains it.
        keeps_best: False: it keeps its last epoch and trains all of them (no early stop).
        splits: the prepared splits `test` reads.
        streamed: those of them it reads a batch at a time (dlpipe.evaluation.scoring.
            test_batches), which data prepared in shards leaves there.
        per_head: one objective per target of multi-task data.
        head: it can be one head of multi-task data.
    """

    name: str
    # Returns a dlpipe.tasks.objectives.Objective, which names Setup in its own hints.
    objective: Callable[[Setup], Any] | None
    test: Callable[[Scoring], tuple[dict[str, float], list[Path]]]
    logged: tuple[str, ...] = ()
    monitor: str = "val/loss"
    mode: Mode = "min"
    tiebreak: str = "val/loss"
    champion: str | None = None
    champion_mode: Mode = "min"
    servable: bool = False
    distributed: bool = True
    module: Callable[[Setup, Any], "pl.LightningModule"] = ONE_LOSS
    keeps_best: bool = True
    splits: tuple[str, ...] = ("test",)
    streamed: tuple[str, ...] = ()
    per_head: bool = False
    head: bool = False

    def monitors(self, heads: list[dict] | None = None) -> tuple[str, ...]:
        """The validation metrics a training logs (with multi-task data's `heads`)."""
        own = ("val/loss", *(f"val/{metric}" for metric in self.logged))
        if not self.per_head:
            return own
        per_head = (
            f"val/{head['name']}/{metric}"
            for head in heads or ()
            for metric in head_metrics(head["task"])
        )
        return (*own, *per_head)

    def champion_metric(self, heads: list[dict] | None = None) -> str | None:
        """The test metric versions are compared on (a multi-task model: its first head's)."""
        if self.per_head and heads:
            head = heads[0]
            return f"test/{head['name']}/{builtin(head['task']).champion}"
        return None if self.champion is None else f"test/{self.champion}"

    def curves(self, heads: list[dict] | None = None) -> tuple[str, ...]:
        """The metrics a training logs per epoch as train/<m> and val/<m> (per head,
        <head>/<m>), by their last name: what its learning curves draw."""
        return tuple(dict.fromkeys(name.rsplit("/", 1)[-1] for name in self.monitors(heads)))

    def better(self, metric: str, heads: list[dict] | None = None) -> Mode | None:
        """Which way `metric` is better as this task tells it (its loss, its monitor, its
        champion; a multi-task model's, each head's task's), or None: it does not say."""
        return self._modes(heads).get(metric)

    def _modes(self, heads: list[dict] | None = None) -> dict[str, Mode]:
        own: dict[str, Mode] = {"val/loss": "min", self.monitor: self.mode}
        if self.champion is not None:
            own[f"test/{self.champion}"] = self.champion_mode
        for head in (heads or ()) if self.per_head else ():
            for name, mode in builtin(head["task"])._modes().items():
                split, _, rest = name.partition("/")
                own.setdefault(f"{split}/{head['name']}/{rest}", mode)
        return own

    def lightning_module(self, setup: Setup) -> "pl.LightningModule":
        """The LightningModule fitting `setup.model` for this task."""
        objective = None if self.objective is None else self.objective(setup)
        return self.module(setup, objective)


def _objective(name: str) -> Callable:
    return _later(f"dlpipe.tasks.objectives.{name}_of")


def _scored(name: str) -> Callable:
    return _later(f"dlpipe.evaluation.scoring.{name}")


_BUILTIN = (
    TaskKind(
        "classification",
        _objective("classification"),
        _scored("classification"),
        logged=("acc",),
        monitor="val/acc",
        mode="max",
        champion="acc",
        champion_mode="max",
        servable=True,
        streamed=("test",),
        head=True,
    ),
    TaskKind(
        "regression",
        _objective("regression"),
        _scored("regression"),
        logged=("mae",),
        champion="rmse",
        servable=True,
        streamed=("test",),
        head=True,
    ),
    TaskKind(
        "forecasting",
        _objective("regression"),
        _scored("forecasting"),
        logged=("mae",),
        champion="rmse",
        servable=True,
    ),
    # Its outputs are inputs rebuilt: compared with PCA fitted on the training split.
    TaskKind(
        "reconstruction",
        _objective("reconstruction"),
        _scored("reconstruction"),
        splits=("train", "test"),
    ),
    # The generator's loss says little about its samples and does not settle: a GAN keeps
    # its last epoch. Two optimisers step in turn in one process.
    TaskKind(
        "generation",
        None,
        _scored("generation"),
        logged=("d_acc",),
        distributed=False,
        module=_later("dlpipe.tasks.adversarial.adversarial"),
        keeps_best=False,
    ),
    # Next-token prediction on a text corpus; a registered model writes text.
    TaskKind(
        "language_model",
        _objective("language_model"),
        _scored("language_model"),
        logged=("perplexity", "bpc"),
        champion="bpc",
        servable=True,
    ),
    # A tag per word of a text (named entities); judged by the F1 over the entities.
    TaskKind(
        "token_classification",
        _objective("token_classification"),
        _scored("token_classification"),
        logged=("acc", "f1"),
        monitor="val/f1",
        mode="max",
        champion="f1",
        champion_mode="max",
        servable=True,
    ),
    TaskKind(
        "multitask",
        _objective("multitask"),
        _scored("multitask"),
        servable=True,
        streamed=("test",),
        per_head=True,
    ),
)
BUILTIN: dict[str, TaskKind] = {kind.name: kind for kind in _BUILTIN}


def builtin(name: str) -> TaskKind:
    """dlpipe's own descriptor of the task `name`."""
    if name not in BUILTIN:
        raise ConfigError(f"task '{name}' is not one of dlpipe's: {', '.join(BUILTIN)}")
    return BUILTIN[name]


def kind(task: "str | TaskKind") -> TaskKind:
    """A descriptor, or dlpipe's own of the task named."""
    return task if isinstance(task, TaskKind) else builtin(task)


def head_metrics(task: str) -> tuple[str, ...]:
    """What one head of multi-task data logs: its loss and its task's metrics."""
    return ("loss", *builtin(task).logged)


def replace(base: TaskKind, **changes: Any) -> TaskKind:
    """`base` with `changes` (e.g. objective=, logged=): how a user's task is usually made."""
    return dataclasses.replace(base, **changes)
