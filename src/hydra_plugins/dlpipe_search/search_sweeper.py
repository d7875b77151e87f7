"""Hydra sweeper `dlpipe_optuna`: the Optuna sweeper, made resumable, pruning-aware, with
trials run by the Hydra launcher in batches (search.runner=hydra) or asynchronously on
Ray Tune (search.runner=ray, see dlpipe.search.tune_runner).

Select it with `defaults: [override /hydra/sweeper: dlpipe_optuna]` (conf/search/*.yaml).
It takes the Optuna sweeper's settings plus `pruner` (an Optuna pruner to instantiate).
"""

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from hydra.core.config_store import ConfigStore
from hydra.plugins.sweeper import Sweeper
from hydra.utils import instantiate
from hydra_plugins.hydra_optuna_sweeper._impl import (
    OptunaSweeperImpl,
    create_params_from_overrides,
)
from hydra_plugins.hydra_optuna_sweeper.config import OptunaSweeperConf
from omegaconf import DictConfig, OmegaConf

from dlpipe.errors import DlpipeError, SearchStopped
from dlpipe.exits import fail
from dlpipe.search.study import (
    FailureBudget,
    fail_unfinished,
    make_pruner,
    record_outcome,
    save_plots,
    trials_to_run,
)
from dlpipe.tracking.sweep import close_trial_runs

log = logging.getLogger(__name__)
_TRUSTED = ("hydra_plugins.hydra_optuna_sweeper.*", "optuna.samplers.*")


@dataclass
class DlpipeOptunaSweeperConf(OptunaSweeperConf):
    _target_: str = "hydra_plugins.dlpipe_search.search_sweeper.DlpipeOptunaSweeper"
    pruner: Any = None


ConfigStore.instance().store(
    group="hydra/sweeper", name="dlpipe_optuna", node=DlpipeOptunaSweeperConf, provider="dlpipe"
)


class ResumableSweeperImpl(OptunaSweeperImpl):
    def __init__(self, *args: Any, pruner: optuna.pruners.BasePruner, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.pruner = pruner

    def setup(self, *, hydra_context: Any, task_function: Any, config: DictConfig) -> None:
        super().setup(hydra_context=hydra_context, task_function=task_function, config=config)
        self.task_function = task_function

    def sweep(self, arguments: list[str]) -> None:
        self._process_searchspace_config()
        space, fixed_params, fixed_overrides = create_params_from_overrides(
            [*self._parse_sweeper_params_config(), *arguments]
        )
        for name in fixed_params:
            space.pop(name, None)
        study = optuna.create_study(
            study_name=self.study_name,
            storage=self.storage,
            sampler=self.sampler,
            pruner=self.pruner,
            directions=self._get_directions(),
            load_if_exists=True,
        )
        stale = fail_unfinished(study)
        close_trial_runs(self.config, stale, "FAILED", "its search ended before the trial did")
        remaining = trials_to_run(study, self.n_trials)
        budget = FailureBudget(self.max_failure_rate, self.n_trials)

        def configure(trial: optuna.trial.Trial) -> list[str]:
            (overrides,) = self._configure_trials([trial], space, fixed_params, fixed_overrides)
            return list(overrides)

        if OmegaConf.select(self.config, "search.runner") == "ray":
            self._on_tune(study, configure, remaining, budget)
        else:
            self._in_batches(study, configure, remaining, budget)
        self._save_best(study)
        save_plots(study, Path(self.config.hydra.sweep.dir))
        if budget.spent:
            raise SearchStopped(budget.message())

    def _in_batches(self, study, configure, remaining: int, budget: FailureBudget) -> None:
        """Trials launched `n_jobs` at a time, each batch waiting for its slowest trial."""
        while remaining > 0 and not budget.spent:
            trials = [study.ask() for _ in range(min(remaining, self.n_jobs))]
            # The job reaches its trial (to report and be pruned) by its number.
            batch = [(*configure(t), f"search.trial={t.number}") for t in trials]
            results = self.launcher.launch(batch, initial_job_idx=self.job_idx)
            self.job_idx += len(results)
            for trial, result in zip(trials, results, strict=True):
                record_outcome(study, trial, result, budget)
            remaining -= len(trials)

    def _on_tune(self, study, configure, remaining: int, budget: FailureBudget) -> None:
        from hydra.core.singleton import Singleton

        from dlpipe.errors import ConfigError
        from dlpipe.search import tune_runner

        if len(self._get_directions()) > 1:
            raise ConfigError("search.runner=ray searches one objective: give one direction")
        job = tune_runner.SweepContext(
            self.hydra_context, self.task_function, self.config, Singleton.get_state()
        )
        tune_runner.run(study, configure, remaining, job, self.n_jobs, budget)

    def _save_best(self, study: optuna.Study) -> None:
        completed = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
        if not completed:
            log.warning("no trial completed: no best parameters")
            return
        best = study.best_trial
        path = f"{self.config.hydra.sweep.dir}/best_params.yaml"
        OmegaConf.save(OmegaConf.create({"value": best.value, "params": best.params}), path)
        log.info(f"best trial {best.number}: {best.value:.4f} {best.params} -> {path}")


class DlpipeOptunaSweeper(Sweeper):
    def __init__(
        self,
        sampler: Any,
        direction: Any,
        storage: Any,
        study_name: str | None,
        n_trials: int,
        n_jobs: int,
        max_failure_rate: float,
        custom_search_space: str | None,
        params: DictConfig | None,
        pruner: Any = None,
    ) -> None:
        self.sweeper = ResumableSweeperImpl(
            instantiate(sampler, _execution_whitelist_=_TRUSTED),
            direction,
            storage,
            study_name,
            n_trials,
            n_jobs,
            max_failure_rate,
            custom_search_space,
            params,
            pruner=make_pruner(pruner),
        )

    def setup(self, **kwargs: Any) -> None:
        self.sweeper.setup(**kwargs)

    def sweep(self, arguments: list[str]) -> None:
        """The search; one that breaks off leaves its parent run FAILED, saying why (Hydra
        ends the parent run in any case: see dlpipe.tracking.sweep)."""
        from dlpipe.tracking.sweep import note_stopped

        try:
            return self.sweeper.sweep(arguments)
        except DlpipeError as exc:  # too many failed trials, an unreachable cluster, ...
            note_stopped(self.sweeper.config, str(exc))
            fail(str(exc))
        except BaseException as exc:
            from dlpipe.tracking.client import one_line

            note_stopped(self.sweeper.config, one_line(exc))
            raise
