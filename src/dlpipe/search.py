"""Optuna search: resumable studies, trials that reach their jobs, pruning, outcomes.

The Hydra Optuna sweeper hands a job only its parameters. dlpipe's sweeper (hydra/sweeper
`dlpipe_optuna`, see hydra_plugins/dlpipe_search) also hands it `search.trial=<number>`;
the job loads that trial from the study's storage, reports its per-epoch validation
metric to it and stops when the pruner says so. The sweeper then records the job's
outcome: COMPLETE with its score, PRUNED, or FAIL.
"""

import logging

import optuna
from hydra.core.utils import JobReturn, JobStatus
from omegaconf import DictConfig

log = logging.getLogger(__name__)

FINISHED_STATES = (
    optuna.trial.TrialState.COMPLETE,
    optuna.trial.TrialState.PRUNED,
    optuna.trial.TrialState.FAIL,
)


def trials_to_run(study: optuna.Study, n_trials: int) -> int:
    """How many trials are left of `n_trials`, after failing those an interrupted sweep left.

    Trials still RUNNING or WAITING when a sweep starts belong to a sweep that died: they
    are marked FAIL and count, so a resumed study ends with exactly `n_trials` trials.
    """
    for trial in study.get_trials(deepcopy=False):
        if trial.state not in FINISHED_STATES:
            study.tell(trial.number, state=optuna.trial.TrialState.FAIL)
            log.warning(f"trial {trial.number} was left unfinished by an earlier sweep: FAIL")
    done = len(study.get_trials(deepcopy=False))
    if done:
        log.info(f"study '{study.study_name}' resumes: {done} of {n_trials} trials done")
    return max(n_trials - done, 0)


def record_outcome(study: optuna.Study, trial: optuna.trial.Trial, result: JobReturn) -> None:
    """Tell the study how a job ended: its returned score, pruned, or failed."""
    if result.status == JobStatus.COMPLETED:
        study.tell(trial, float(result.return_value))
    elif isinstance(result._return_value, optuna.TrialPruned):
        study.tell(trial, state=optuna.trial.TrialState.PRUNED)
    else:
        log.warning(f"trial {trial.number} failed: {result._return_value!r}")
        study.tell(trial, state=optuna.trial.TrialState.FAIL)


def make_pruner(settings: DictConfig | None) -> optuna.pruners.BasePruner:
    """The configured pruner (`_target_` under optuna.pruners), or none."""
    if settings is None:
        return optuna.pruners.NopPruner()
    from hydra.utils import instantiate

    return instantiate(settings, _execution_whitelist_=("optuna.pruners.*",))


def job_trial(cfg: DictConfig) -> optuna.trial.Trial | None:
    """The trial this job runs for, when a dlpipe search launched it."""
    number = cfg.get("search", {}).get("trial")
    if number is None:
        return None
    # The job decides on pruning itself, so it needs the study's pruner, not Optuna's default.
    study = optuna.load_study(
        study_name=cfg.search.study,
        storage=cfg.search.storage,
        pruner=make_pruner(cfg.search.pruner),
    )
    trial_id = study._storage.get_trial_id_from_study_id_trial_number(study._study_id, number)
    return optuna.trial.Trial(study, trial_id)


def pruning_callback(trial: optuna.trial.Trial, monitor: str):
    """Reports `monitor` after each validation and raises optuna.TrialPruned when told to."""
    from optuna_integration import PyTorchLightningPruningCallback

    return PyTorchLightningPruningCallback(trial, monitor=monitor)
