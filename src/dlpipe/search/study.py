"""Optuna search: resumable studies, trials that reach their jobs, pruning, outcomes.

The Hydra Optuna sweeper hands a job only its parameters. dlpipe's sweeper (hydra/sweeper
`dlpipe_optuna`, see hydra_plugins/dlpipe_search) also hands it `search.trial=<number>`;
the job loads that trial from the study's storage, reports its per-epoch validation
metric to it and stops when the pruner says so. The sweeper then records the job's
outcome: COMPLETE with its score, PRUNED, or FAIL.
"""

import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import optuna
from hydra.core.utils import JobReturn, JobStatus
from omegaconf import DictConfig, OmegaConf

from dlpipe import files
from dlpipe.errors import ConfigError, SearchMisdirected

log = logging.getLogger(__name__)
_ABSENT = object()

# On Ray Tune, the keys of a trial's results: its checkpoint monitor after each epoch
# (and, at the end, its best epoch's), and the mark of a trial that ran to its end.
SCORE = "search/score"
FINISHED = "search/finished"

FINISHED_STATES = (
    optuna.trial.TrialState.COMPLETE,
    optuna.trial.TrialState.PRUNED,
    optuna.trial.TrialState.FAIL,
)


def fail_unfinished(study: optuna.Study) -> list[int]:
    """Mark FAIL the trials an interrupted search left RUNNING or WAITING; their numbers.

    They count, so a resumed study ends with exactly its n_trials trials.
    """
    stale = [t.number for t in study.get_trials(deepcopy=False) if t.state not in FINISHED_STATES]
    for number in stale:
        study.tell(number, state=optuna.trial.TrialState.FAIL)
        log.warning(f"trial {number} was left unfinished by an earlier search: FAIL")
    return stale


def trials_to_run(study: optuna.Study, n_trials: int) -> int:
    """How many trials are left of `n_trials`."""
    done = len(study.get_trials(deepcopy=False))
    if done:
        log.info(f"study '{study.study_name}' resumes: {done} of {n_trials} trials done")
    return max(n_trials - done, 0)


@dataclass
class FailureBudget:
    """A search whose trials keep failing stops: once more than `rate` x `n_trials` of its
    trials failed (hydra.sweeper.max_failure_rate; 0 stops at the first failure)."""

    rate: float
    n_trials: int
    failed: int = 0
    last: str = ""

    def record(self, number: int, reason: str) -> None:
        self.failed += 1
        self.last = f"trial {number}: {reason}"
        log.warning(f"trial {number} failed: {reason}")

    @property
    def spent(self) -> bool:
        return self.failed > self.rate * self.n_trials

    def message(self) -> str:
        return (
            f"the search stopped: {self.failed} trials failed, more than "
            f"hydra.sweeper.max_failure_rate={self.rate:g} of search.n_trials={self.n_trials}"
            f" allows (the last, {self.last}); each failed trial's run says why in its tag "
            "dlpipe.failure"
        )


def record_outcome(
    study: optuna.Study, trial: optuna.trial.Trial, result: JobReturn, budget: FailureBudget
) -> None:
    """Tell the study how a job ended: its returned score, pruned, or failed."""
    if result.status == JobStatus.COMPLETED:
        study.tell(trial, float(result.return_value))
    elif isinstance(result._return_value, SearchMisdirected):  # so would every trial be
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
        raise result._return_value
    elif isinstance(result._return_value, optuna.TrialPruned):
        study.tell(trial, state=optuna.trial.TrialState.PRUNED)
    else:
        from dlpipe.tracking.client import one_line

        budget.record(trial.number, one_line(result._return_value))
        study.tell(trial, state=optuna.trial.TrialState.FAIL)


def make_pruner(settings: DictConfig | None) -> optuna.pruners.BasePruner:
    """The configured pruner (`_target_` under optuna.pruners), or none."""
    if settings is None:
        return optuna.pruners.NopPruner()
    from hydra.utils import instantiate

    return instantiate(settings, _execution_whitelist_=("optuna.pruners.*",))


def check_direction(study: optuna.Study, cfg: DictConfig) -> None:
    """A search must seek its objective's better end: a trial returns the best checkpoint
    monitor, better higher or lower (trainer.checkpoint_mode, from the task when unset)."""
    monitor, mode = cfg.trainer.checkpoint_monitor, cfg.trainer.checkpoint_mode
    wanted = "maximize" if mode == "max" else "minimize"
    going = [direction.name.lower() for direction in study.directions]
    if going != [wanted]:
        better = "higher" if mode == "max" else "lower"
        raise SearchMisdirected(
            f"study '{study.study_name}' would {' and '.join(going)} {monitor}, which is better "
            f"{better}: set hydra.sweeper.direction={wanted} (search=language_model does, for "
            "language models) and a new search.study (a study keeps its first direction)"
        )


def loaded(cfg: DictConfig) -> optuna.Study:
    """The study of the search a job is a trial of."""
    # The job decides on pruning itself, so it needs the study's pruner, not Optuna's default.
    return optuna.load_study(
        study_name=cfg.search.study,
        storage=cfg.search.storage,
        pruner=make_pruner(cfg.search.pruner),
    )


def job_trial(cfg: DictConfig) -> optuna.trial.Trial | None:
    """The trial this job runs for, when a dlpipe search launched it."""
    number = cfg.get("search", {}).get("trial")
    if number is None:
        return None
    study = loaded(cfg)
    trial_id = study._storage.get_trial_id_from_study_id_trial_number(study._study_id, number)
    return optuna.trial.Trial(study, trial_id)


def pruning_callback(trial: optuna.trial.Trial, monitor: str):
    """Reports `monitor` after each validation and raises optuna.TrialPruned when told to."""
    from optuna_integration import PyTorchLightningPruningCallback

    return PyTorchLightningPruningCallback(trial, monitor=monitor)


def study_counts(storage: str, study: str) -> dict[str, int]:
    """Trials of a study by outcome, as metrics for the sweep's parent run."""
    trials = optuna.load_study(study_name=study, storage=storage).get_trials(deepcopy=False)
    return {
        f"search/{state.name.lower()}": sum(t.state == state for t in trials)
        for state in FINISHED_STATES
    }


def save_plots(study: optuna.Study, folder: Path) -> list[Path]:
    """Optimisation history, parameter importances and parallel coordinates, as PNG files."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as views

    written = []
    for name, view in (
        ("optuna_history.png", views.plot_optimization_history),
        ("optuna_importances.png", views.plot_param_importances),
        ("optuna_parallel.png", views.plot_parallel_coordinate),
    ):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            try:
                axes = view(study)
            except (ValueError, RuntimeError) as exc:  # e.g. importances need 2 complete trials
                log.warning(f"no {name}: {exc}")
                continue
        with files.atomic_path(folder / name) as tmp:
            axes.figure.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
        plt.close(axes.figure)
        written.append(folder / name)
    return written


def check_space(config: DictConfig) -> None:
    """Every searched key must exist in the config and every range must hold values."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra_plugins.hydra_optuna_sweeper._impl import create_optuna_distribution_from_override

    params = OmegaConf.select(config, "hydra.sweeper.params") or {}
    parser = OverridesParser.create()
    for key, expression in params.items():
        if OmegaConf.select(config, key, default=_ABSENT) is _ABSENT:
            raise ConfigError(f"hydra.sweeper.params.{key}: {key} is not a config key")
        try:
            create_optuna_distribution_from_override(parser.parse_override(f"{key}={expression}"))
        except (ValueError, TypeError) as exc:
            raise ConfigError(
                f"hydra.sweeper.params.{key}: {expression} is no search range ({exc})"
            ) from exc
