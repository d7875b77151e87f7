"""Hydra sweeper `dlpipe_optuna`: the Optuna sweeper, made resumable, pruning-aware.

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

from dlpipe.search.study import make_pruner, record_outcome, save_plots, trials_to_run

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
        remaining = trials_to_run(study, self.n_trials)
        while remaining > 0:
            trials = [study.ask() for _ in range(min(remaining, self.n_jobs))]
            batch = self._configure_trials(trials, space, fixed_params, fixed_overrides)
            # The job reaches its trial (to report and be pruned) by its number.
            batch = [
                (*overrides, f"search.trial={t.number}")
                for overrides, t in zip(batch, trials, strict=True)
            ]
            results = self.launcher.launch(batch, initial_job_idx=self.job_idx)
            self.job_idx += len(results)
            for trial, result in zip(trials, results, strict=True):
                record_outcome(study, trial, result)
            remaining -= len(trials)
        self._save_best(study)
        save_plots(study, Path(self.config.hydra.sweep.dir))

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
        return self.sweeper.sweep(arguments)
