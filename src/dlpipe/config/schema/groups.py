"""The whole config (conf/config.yaml) and the groups of training settings.

Groups whose settings depend on the option chosen (data sets, models, optimisers,
schedules, clusters) have a dataclass per option, picked by the group's `name`. Tests
keep these in step with the code that reads them: the data sources' and model builders'
arguments, the optimisers', schedules' and Lightning's own settings.
"""

import re
from dataclasses import dataclass
from typing import Any, Literal

from dlpipe.config.schema.check import setting
from dlpipe.config.schema.data import Data, check_data
from dlpipe.errors import ConfigError
from dlpipe.models import registry
from dlpipe.tasks import configured
from dlpipe.tasks.kinds import BUILTIN, head_metrics
from dlpipe.tracking import champion

# Checkpointing and early stopping act when validation ends, before the epoch's train
# metrics exist, so they can only watch validation metrics: those each task logs.
ALL_MONITORS = tuple(dict.fromkeys(m for kind in BUILTIN.values() for m in kind.monitors()))
# Multi-task data also logs each head's loss and metric: val/<head>/loss, val/digit/acc.
_HEAD_METRICS = tuple(
    dict.fromkeys(m for kind in BUILTIN.values() if kind.head for m in head_metrics(kind.name))
)
HEAD_MONITOR = re.compile(rf"^val/[^/]+/({'|'.join(_HEAD_METRICS)})$")
MONITORS_ALLOWED = (
    f"one of {', '.join(ALL_MONITORS)}, or val/<target>/{'|'.join(_HEAD_METRICS)} for "
    "multi-task data, or null for the task's own"
)

Mode = Literal["min", "max"]


def monitor() -> Any:
    # A user's task logs metrics of its own: they are checked against it when training
    # starts. Config checks those of dlpipe's tasks here.
    return setting(rule=lambda name: name.startswith("val/"), allowed=MONITORS_ALLOWED)


def is_builtin_monitor(name: str) -> bool:
    """Whether one of dlpipe's tasks logs the validation metric `name`."""
    return name in ALL_MONITORS or bool(HEAD_MONITOR.match(name))


# --- optim: conf/optim/*.yaml (options are named by `name`: momentum is sgd) -------------
# Settings beyond the conf files' are optional: torch's own defaults apply.


@dataclass(kw_only=True)
class Optim:
    name: str
    lr: float = setting(gt=0)
    weight_decay: float = setting(ge=0)


@dataclass(kw_only=True)
class Sgd(Optim):
    momentum: float = setting(ge=0)
    nesterov: bool
    dampening: float = setting(ge=0, default=None)


@dataclass(kw_only=True)
class RmsProp(Optim):
    alpha: float = setting(ge=0)
    momentum: float = setting(ge=0)
    eps: float = setting(gt=0, default=None)
    centered: bool = setting(default=None)


@dataclass(kw_only=True)
class Adam(Optim):
    betas: list[float] = setting(ge=0, lt=1, length=2, default=None)
    eps: float = setting(gt=0, default=None)
    amsgrad: bool = setting(default=None)


OPTIMS = {"sgd": Sgd, "rmsprop": RmsProp, "adam": Adam, "adamw": Adam}

# --- schedule: conf/schedule/*.yaml -----------------------------------------------------


@dataclass(kw_only=True)
class Schedule:
    name: str
    warmup_epochs: float = setting(ge=0)


@dataclass(kw_only=True)
class StepSchedule(Schedule):
    step_epochs: float = setting(gt=0)
    gamma: float = setting(gt=0)


@dataclass(kw_only=True)
class Exponential(Schedule):
    gamma: float = setting(gt=0)


@dataclass(kw_only=True)
class Cosine(Schedule):
    eta_min: float = setting(ge=0)


@dataclass(kw_only=True)
class OneCycle(Schedule):
    pct_start: float = setting(gt=0, lt=1)


SCHEDULES = {
    "none": Schedule,
    "step": StepSchedule,
    "exponential": Exponential,
    "cosine": Cosine,
    "onecycle": OneCycle,
}

# --- trainer, tracking, cluster, search --------------------------------------------------


@dataclass(kw_only=True)
class EarlyStopping:
    # null: the task's own monitor and mode (dlpipe.tasks.kinds.TaskKind).
    monitor: str | None = monitor()
    mode: Mode | None
    # null: never stop early, as trainer.early_stopping=null.
    patience: int | None = setting(ge=0)


@dataclass(kw_only=True)
class Augment:
    """Image augmentation of every training batch (see dlpipe.training.augment)."""

    # A random crop of the image's own size from it padded by this many pixels.
    crop: int | None = setting(ge=1, default=None)
    # Mirrored left to right, half of the images.
    flip: bool = setting(default=False)
    # Brightness, contrast and (colour images) saturation each scaled by up to this share.
    jitter: float | None = setting(gt=0, le=1, default=None)


@dataclass(kw_only=True)
class Trainer:
    accelerator: Literal["auto", "cpu", "gpu", "cuda", "mps", "tpu"]
    devices: int | str | list[int]
    precision: Literal[
        "64-true", "32-true", "16-true", "16-mixed", "bf16-true", "bf16-mixed", 64, 32, 16
    ]
    max_epochs: int = setting(ge=1)
    gradient_clip_val: float | None = setting(gt=0)
    gradient_clip_algorithm: Literal["norm", "value"]
    # null: no early stopping, every one of max_epochs is trained.
    early_stopping: EarlyStopping | None
    checkpoint_monitor: str | None = monitor()
    checkpoint_mode: Mode | None
    # Decides between epochs tied on checkpoint_monitor; null: the task's own (val/loss).
    checkpoint_tiebreak: str | None = monitor()
    checkpoint_tiebreak_mode: Mode | None
    # Train anew on train+val for the chosen epoch's number of epochs (dlpipe.training.refit).
    refit: bool
    # Images only; null: none.
    augment: Augment | None = setting(default=None)

    def __post_init__(self) -> None:
        """A mode says which way its monitor is better: without a monitor (the task's
        own), the task's mode goes with it."""
        watched = {
            "trainer.checkpoint_": (self.checkpoint_monitor, self.checkpoint_mode),
            "trainer.checkpoint_tiebreak_": (
                self.checkpoint_tiebreak,
                self.checkpoint_tiebreak_mode,
            ),
        }
        if self.early_stopping is not None:
            stopping = self.early_stopping
            watched["trainer.early_stopping."] = (stopping.monitor, stopping.mode)
        for key, (monitor, mode) in watched.items():
            if monitor is None and mode is not None:
                raise ConfigError(
                    f"{key}mode={mode} needs {key}monitor: name the metric it watches, or "
                    "leave both null for the task's own"
                )


@dataclass(kw_only=True)
class Tracking:
    uri: str | None
    experiment: str
    retry_seconds: float = setting(ge=0, le=486)


@dataclass(kw_only=True)
class Cluster:
    name: str


@dataclass(kw_only=True)
class Ray(Cluster):
    address: str | None
    connect_timeout: float = setting(gt=0)
    num_workers: int = setting(gt=0)
    min_workers: int | None = setting(gt=0)
    placement_strategy: Literal["PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD"]
    use_gpu: bool
    resources_per_worker: dict[str, float] = setting(ge=0)
    max_failures: int = setting(ge=0)
    storage_path: str | None

    def __post_init__(self) -> None:
        if self.min_workers is not None and self.min_workers > self.num_workers:
            raise ConfigError(
                f"cluster.min_workers={self.min_workers} is more than cluster.num_workers="
                f"{self.num_workers}: the workers a run may shrink to are at most those it "
                "starts with"
            )


CLUSTERS = {"local": Cluster, "ray": Ray}


@dataclass(kw_only=True)
class Search:
    study: str
    storage: str
    n_trials: int = setting(gt=0)
    pruner: dict[str, Any] | None  # an Optuna pruner for Hydra to instantiate
    # Optional: a search written before them runs as it did, on the Hydra runner.
    runner: Literal["hydra", "ray"] = setting(default="hydra")
    scheduler: Literal["optuna", "asha", "hyperband"] = setting(default="optuna")
    grace_epochs: int = setting(default=2, gt=0)
    reduction_factor: float = setting(default=3, gt=1)
    trial: int | None = setting(ge=0)


# --- the top level: conf/config.yaml ----------------------------------------------------


@dataclass(kw_only=True)
class Transfer:
    source: str | None
    freeze: Literal["none", "body"] | int = setting(ge=0)


@dataclass(kw_only=True)
class Multitask:
    shared: int = setting(gt=0)
    # Which heads there are depends on the data, checked when training starts.
    weights: dict[str, float] | None = setting(ge=0)


@dataclass(kw_only=True)
class Evaluate:
    samples: int = setting(gt=0)
    classifier: str | None


@dataclass(kw_only=True)
class Registry:
    name: str | None = setting(
        rule=lambda name: bool(champion.NAME.match(name)),
        allowed=f"a name of letters, digits, '_', '.' and '-', {champion.AUTO} (named after "
        "the data set) or null",
    )
    # Which way it is better: from its task when it is the task's champion, else from its
    # name (checked in Config for dlpipe's tasks; a user's task may name its own).
    metric: str | None = setting(
        rule=lambda name: name.startswith("test/"), allowed=champion.ALLOWED
    )
    promote: bool


@dataclass(kw_only=True)
class Config:
    data: Data = setting(part=check_data)
    model: dict = setting(part=registry.check_model)
    # null: the data's task (or the model's own); a user's: `_target_` and its settings.
    task: dict | None = setting(part=configured.check_task, default=None)
    optim: Optim = setting(options=OPTIMS)
    schedule: Schedule = setting(options=SCHEDULES)
    trainer: Trainer
    tracking: Tracking
    cluster: Cluster = setting(options=CLUSTERS)
    # Only in an Optuna search (`-m search=<name>`).
    search: Search = setting(default=None)
    seed: int = setting(ge=0)
    resume: bool
    transfer: Transfer
    multitask: Multitask
    evaluate: Evaluate
    registry: Registry

    def __post_init__(self) -> None:
        """Without a task of the user's, the monitors must be metrics dlpipe's tasks log
        and registry.metric one whose name says which way is better."""
        if self.task is not None:
            return
        trainer = self.trainer
        stopping = trainer.early_stopping
        watched = {
            "trainer.early_stopping.monitor": stopping.monitor if stopping else None,
            "trainer.checkpoint_monitor": trainer.checkpoint_monitor,
            "trainer.checkpoint_tiebreak": trainer.checkpoint_tiebreak,
        }
        for key, name in watched.items():
            if name is not None and not is_builtin_monitor(name):
                raise ConfigError(f"{key} must be {MONITORS_ALLOWED}, got {name!r}")
        metric = self.registry.metric
        if metric is not None and not champion.is_known(metric):
            raise ConfigError(f"registry.metric must be {champion.ALLOWED}, got {metric!r}")
