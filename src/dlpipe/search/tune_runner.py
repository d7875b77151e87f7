"""Searches on Ray Tune (search.runner=ray): asynchronous trials, stopped early by a Tune
scheduler, sampled by Optuna on the study's own storage.

The Hydra runner launches `n_jobs` trials and waits for the slowest before the next
batch. Here Tune keeps `n_jobs` trials running: when one ends or is stopped, the next
starts at once. Each trial is one job of the Hydra sweep (the same config, folder and
child MLflow run as on the Hydra runner), run in a Tune actor, which the next trial
reuses (a new process takes seconds to start). It reports its checkpoint monitor after
every epoch (see dlpipe.search.reporting), and the scheduler (ASHA, HyperBand, or
Optuna's pruner) decides whether it goes on.

The study, not Tune's experiment folder, is what a search resumes from: the searcher asks
the study for each trial (TPE by default) and tells it every outcome, so a killed search
run again counts its trials exactly, as on the Hydra runner.
"""

import logging
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import optuna
from omegaconf import DictConfig, OmegaConf, open_dict
from ray import tune
from ray.tune.schedulers import AsyncHyperBandScheduler, FIFOScheduler, TrialScheduler
from ray.tune.search import Searcher

from dlpipe.search.study import FINISHED, SCORE, FailureBudget
from dlpipe.tracking import client as tracking
from dlpipe.tracking.sweep import close_trial_runs

log = logging.getLogger(__name__)
State = optuna.trial.TrialState


@dataclass(frozen=True)
class SweepContext:
    """What a trial needs to run as a job of the Hydra sweep: Hydra's context, the task
    function, the sweep's config and Hydra's registries (its config store)."""

    context: Any
    task: Callable
    config: DictConfig
    singletons: dict


def run_trial(tune_config: dict, job: SweepContext) -> None:
    """One trial, in its Tune actor: the sweep's job with the trial's overrides, as Hydra's
    launchers run a job; then the best epoch's score, as the trial's last result."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.core.singleton import Singleton
    from hydra.core.utils import run_job, setup_globals

    from dlpipe.config.compose import enter_sweep_folder

    number = tune_config["trial"]
    setup_globals()
    Singleton.set_state(job.singletons)
    # Hydra takes the project folder from where the job's config is composed; Tune starts
    # each trial in a folder of its own.
    enter_sweep_folder(Path(job.config.hydra.runtime.cwd))
    overrides = [*tune_config["overrides"], f"search.trial={number}"]
    config = job.context.config_loader.load_sweep_config(job.config, overrides)
    with open_dict(config):
        config.hydra.job.id = f"trial_{number}"
        config.hydra.job.num = number
    HydraConfig.instance().set_config(config)
    result = run_job(
        hydra_context=job.context,
        task_function=job.task,
        config=config,
        job_dir_key="hydra.sweep.dir",
        job_subdir_key="hydra.sweep.subdir",
    )
    # return_value raises the job's own error when it failed: the trial fails with it.
    tune.report({SCORE: float(result.return_value), FINISHED: 1})


class StudySearcher(Searcher):
    """Optuna as Tune's searcher: each Tune trial is the study's next trial, its outcome
    told to the study: COMPLETE with its best score, PRUNED when the scheduler stopped
    it, FAIL when it failed or the search stopped first."""

    def __init__(
        self,
        study: optuna.Study,
        configure: Callable[[optuna.trial.Trial], list[str]],
        budget: int,
        close_run: Callable[[int, State], None],
    ) -> None:
        super().__init__()
        self.study, self.configure, self.budget = study, configure, budget
        self.close_run = close_run
        self.trials: dict[str, optuna.trial.Trial] = {}
        self.stopped: set[str] = set()  # filled by EarlyStopping

    def suggest(self, trial_id: str) -> dict | None:
        if len(self.trials) >= self.budget:
            return Searcher.FINISHED
        trial = self.study.ask()
        self.trials[trial_id] = trial
        return {"trial": trial.number, "overrides": self.configure(trial)}

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error=False) -> None:
        trial = self.trials[trial_id]
        if not error and result and result.get(FINISHED):
            self.study.tell(trial, result[SCORE])
            log.info(f"trial {trial.number} complete: {result[SCORE]:.4f}")
            return
        state = State.PRUNED if trial_id in self.stopped and not error else State.FAIL
        self.study.tell(trial, state=state)
        log.info(f"trial {trial.number} {state.name.lower()}")
        if not error:  # a failed job closes its own run, FAILED with the reason
            self.close_run(trial.number, state)

    # Tune checkpoints its searcher to resume an experiment; a search resumes from its
    # study instead, so there is nothing to save.
    def save_to_dir(self, checkpoint_dir: str, session_str: str = "default") -> None:
        pass

    def restore_from_dir(self, checkpoint_dir: str) -> None:
        pass


class EarlyStopping(FIFOScheduler):
    """Asks `rule` (ASHA, HyperBand or Optuna's pruner) after each epoch whether a trial
    goes on, and notes those it stops. A trial past its last epoch is never stopped: it
    is finishing its run."""

    def __init__(self, rule: TrialScheduler, last_epoch: int, stopped: set[str]) -> None:
        super().__init__()
        self.rule, self.last_epoch, self.stopped = rule, last_epoch, stopped

    def set_search_properties(self, metric, mode, **spec) -> bool:
        super().set_search_properties(metric, mode, **spec)
        return self.rule.set_search_properties(metric, mode, **spec)

    def on_trial_add(self, tune_controller, trial) -> None:
        self.rule.on_trial_add(tune_controller, trial)

    def on_trial_result(self, tune_controller, trial, result: dict) -> str:
        if result.get(FINISHED) or result.get("epoch", 0) >= self.last_epoch:
            return TrialScheduler.CONTINUE
        decision = self.rule.on_trial_result(tune_controller, trial, result)
        if decision == TrialScheduler.STOP:
            self.stopped.add(trial.trial_id)
            log.info(f"trial {trial.config['trial']} stopped after epoch {result.get('epoch')}")
        return decision

    def on_trial_complete(self, tune_controller, trial, result) -> None:
        self.rule.on_trial_complete(tune_controller, trial, result)

    def on_trial_error(self, tune_controller, trial) -> None:
        self.rule.on_trial_error(tune_controller, trial)

    def on_trial_remove(self, tune_controller, trial) -> None:
        self.rule.on_trial_remove(tune_controller, trial)


class OptunaPruning(FIFOScheduler):
    """Optuna's pruner as a Tune scheduler: each epoch's score reported to the trial's
    study trial, which the pruner then judges, as it does on the Hydra runner."""

    def __init__(self, searcher: StudySearcher) -> None:
        super().__init__()
        self.searcher = searcher

    def on_trial_result(self, tune_controller, trial, result: dict) -> str:
        study_trial = self.searcher.trials[trial.trial_id]
        study_trial.report(result[SCORE], step=int(result["epoch"]))
        return TrialScheduler.STOP if study_trial.should_prune() else TrialScheduler.CONTINUE


def scheduler(search: DictConfig, max_epochs: int, searcher: StudySearcher) -> TrialScheduler:
    """The configured rule that stops unpromising trials (search.scheduler)."""
    name = OmegaConf.select(search, "scheduler", default="optuna")
    if name == "optuna":
        return OptunaPruning(searcher)
    # Asynchronous HyperBand: HyperBand's brackets without its pauses, which would need
    # every trial to resume from Tune checkpoints.
    return AsyncHyperBandScheduler(
        time_attr="epoch",
        max_t=max_epochs,
        grace_period=min(OmegaConf.select(search, "grace_epochs", default=2), max_epochs),
        reduction_factor=OmegaConf.select(search, "reduction_factor", default=3),
        brackets=3 if name == "hyperband" else 1,
    )


class FailureStop(tune.Stopper):
    """Stops the search once its trials failed more than its failure budget allows."""

    def __init__(self, budget: FailureBudget) -> None:
        self.budget = budget

    def __call__(self, trial_id: str, result: dict) -> bool:
        return False

    def stop_all(self) -> bool:
        return self.budget.spent


class FailureCount(tune.Callback):
    """Counts failed trials against the budget, each with its reason."""

    def __init__(self, budget: FailureBudget) -> None:
        self.budget = budget

    def on_trial_error(self, iteration: int, trials: list, trial, **info) -> None:
        self.budget.record(trial.config["trial"], _reason(trial))


def _reason(trial) -> str:
    """The trial's own error in one line (from the copy Tune keeps beside the driver)."""
    import ray.cloudpickle

    try:
        with open(trial.pickled_error_file, "rb") as saved:
            error = ray.cloudpickle.load(saved)
    except (OSError, TypeError, EOFError):  # no error saved
        return f"see {trial.error_file}"
    return tracking.one_line(getattr(error, "cause", None) or error)


def close_trial_run(cfg: DictConfig, number: int, state: State) -> None:
    """Close the run of a trial Tune stopped, which may have ended with its actor:
    FINISHED and tagged dlpipe.pruned when the scheduler stopped it, KILLED when the
    search did."""
    pruned = state == State.PRUNED
    close_trial_runs(cfg, [number], "FINISHED" if pruned else "KILLED")


def _trial_name(trial) -> str:
    """`trial_<number>`, the study's number, rather than a name made of every override."""
    return f"trial_{trial.config['trial']}"


def trial_cpus(cfg: DictConfig) -> float:
    """What a trial's actor reserves: the CPU it trains on, or, with cluster=ray, next to
    nothing (Tune takes no zero): its Ray Train workers reserve their own."""
    return 0.01 if cfg.cluster.name == "ray" else 1


def local_cpus(cfg: DictConfig, n_jobs: int) -> int | None:
    """The logical CPUs of a Ray started here for trials that train on Ray Train: room for
    n_jobs trials' workers at once (more than the cores, if need be: they then share
    them), and one more for the trials' own actors. None (the cores) otherwise."""
    if cfg.cluster.name != "ray":
        return None
    per_worker = cfg.cluster.resources_per_worker.get("CPU", 1)
    workers = math.ceil(n_jobs * cfg.cluster.num_workers * per_worker)
    return max(os.cpu_count() or 1, workers) + 1


def run(
    study: optuna.Study,
    configure: Callable[[optuna.trial.Trial], list[str]],
    remaining: int,
    job: SweepContext,
    n_jobs: int,
    budget: FailureBudget,
) -> None:
    """Run `remaining` trials of `study` on Ray Tune, `n_jobs` at a time."""
    from dlpipe.cluster.connect import connect
    from dlpipe.config.usercode import code_folders

    cfg = job.config
    # cluster=local has no address: RAY_ADDRESS then, or a Ray started here.
    address = OmegaConf.select(cfg, "cluster.address")
    timeout = OmegaConf.select(cfg, "cluster.connect_timeout", default=15)
    task_config = OmegaConf.masked_copy(cfg, [key for key in cfg if key != "hydra"])
    on_ray_train = cfg.cluster.name == "ray"
    where = connect(
        address, timeout, code_folders(task_config), local_cpus(cfg, n_jobs), on_ray_train
    )
    log.info(f"search on Ray Tune, {n_jobs} trials at a time, on {where}")
    searcher = StudySearcher(study, configure, remaining, partial(close_trial_run, cfg))
    stopping = EarlyStopping(
        scheduler(cfg.search, cfg.trainer.max_epochs, searcher),
        last_epoch=cfg.trainer.max_epochs - 1,
        stopped=searcher.stopped,
    )
    mode = "max" if study.direction == optuna.study.StudyDirection.MAXIMIZE else "min"
    trainable = tune.with_parameters(run_trial, job=job)
    tuner = tune.Tuner(
        tune.with_resources(trainable, {"cpu": trial_cpus(cfg)}),
        tune_config=tune.TuneConfig(
            metric=SCORE,
            mode=mode,
            search_alg=searcher,
            scheduler=stopping,
            num_samples=remaining,
            max_concurrent_trials=n_jobs,
            trial_name_creator=_trial_name,
            trial_dirname_creator=_trial_name,
            reuse_actors=True,
        ),
        run_config=tune.RunConfig(
            name="tune",
            storage_path=str(Path(cfg.hydra.sweep.dir).resolve()),
            stop=FailureStop(budget),
            callbacks=[FailureCount(budget)],
            failure_config=tune.FailureConfig(max_failures=0),
            verbose=0,  # each trial's end is logged by the searcher
        ),
    )
    # Ctrl-C stops the search as it stops one on the Hydra runner (run it again to resume),
    # rather than ending Tune's loop as if the search were done.
    os.environ.setdefault("TUNE_DISABLE_SIGINT_HANDLER", "1")
    tuner.fit()
