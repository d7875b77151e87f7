"""The parts of a search on Ray Tune that decide: the searcher's outcomes, which trials
the early stopping may stop, the failure budget, the schedulers and the CPUs asked for.
The searches themselves run in tests/integration/test_search_tune.py."""

import optuna
import pytest
from ray.tune.schedulers import AsyncHyperBandScheduler, FIFOScheduler, TrialScheduler
from ray.tune.search import Searcher

from dlpipe.config.schema.validate import validate
from dlpipe.errors import ConfigError
from dlpipe.search import tune_runner
from dlpipe.search.study import FINISHED, SCORE, FailureBudget

State = optuna.trial.TrialState


def searcher(budget: int = 3):
    closed = []
    study = optuna.create_study(direction="maximize")
    found = tune_runner.StudySearcher(
        study,
        configure=lambda trial: [f"optim.lr={trial.number}"],
        budget=budget,
        close_run=lambda number, state: closed.append((number, state)),
    )
    return found, study, closed


def test_the_searcher_hands_out_study_trials_up_to_its_budget():
    found, study, _ = searcher(budget=2)
    assert found.suggest("a") == {"trial": 0, "overrides": ["optim.lr=0"]}
    assert found.suggest("b") == {"trial": 1, "overrides": ["optim.lr=1"]}
    assert found.suggest("c") == Searcher.FINISHED
    assert len(study.trials) == 2


def test_the_searcher_tells_the_study_each_outcome_and_closes_runs_jobs_could_not():
    found, study, closed = searcher(budget=4)
    for trial_id in "abcd":
        found.suggest(trial_id)
    found.stopped.add("b")
    found.on_trial_complete("a", {SCORE: 0.9, FINISHED: 1})
    found.on_trial_complete("b", {SCORE: 0.5, "epoch": 2})  # stopped by the scheduler
    found.on_trial_complete("c", None, error=True)  # the job failed: its run says why
    found.on_trial_complete("d", {SCORE: 0.7, "epoch": 1})  # cut short by the search
    states = [t.state for t in study.trials]
    assert states == [State.COMPLETE, State.PRUNED, State.FAIL, State.FAIL]
    assert study.trials[0].value == 0.9
    assert closed == [(1, State.PRUNED), (3, State.FAIL)]


class _Stops(FIFOScheduler):
    def on_trial_result(self, tune_controller, trial, result):
        return TrialScheduler.STOP


class _Trial:
    def __init__(self) -> None:
        self.trial_id, self.config = "t", {"trial": 7}


def test_early_stopping_never_stops_a_trial_finishing_its_last_epoch():
    stopped = set()
    stopping = tune_runner.EarlyStopping(_Stops(), last_epoch=5, stopped=stopped)
    assert stopping.on_trial_result(None, _Trial(), {SCORE: 0.1, "epoch": 5}) == "CONTINUE"
    assert stopping.on_trial_result(None, _Trial(), {SCORE: 0.1, FINISHED: 1}) == "CONTINUE"
    assert not stopped
    assert stopping.on_trial_result(None, _Trial(), {SCORE: 0.1, "epoch": 2}) == "STOP"
    assert stopped == {"t"}


def test_optunas_pruner_judges_each_epoch_as_a_tune_scheduler():
    found, study, _ = searcher()
    study.pruner = optuna.pruners.ThresholdPruner(lower=0.5)
    found.suggest("t")
    pruning = tune_runner.OptunaPruning(found)
    assert pruning.on_trial_result(None, _Trial(), {SCORE: 0.8, "epoch": 0}) == "CONTINUE"
    assert pruning.on_trial_result(None, _Trial(), {SCORE: 0.2, "epoch": 1}) == "STOP"
    assert study.trials[0].intermediate_values == {0: 0.8, 1: 0.2}


@pytest.mark.parametrize("rate,failures,spent", [(0, 1, True), (0.25, 2, False), (0.25, 3, True)])
def test_the_failure_budget_is_a_share_of_the_trials(rate, failures, spent):
    budget = FailureBudget(rate, n_trials=8)
    for number in range(failures):
        budget.record(number, "TrainingError: diverged")
    assert budget.spent is spent
    assert f"{failures} trials failed" in budget.message()
    assert f"the last, trial {failures - 1}: TrainingError" in budget.message()


@pytest.mark.parametrize("name,brackets", [("asha", 1), ("hyperband", 3)])
def test_asha_and_hyperband_are_asynchronous_over_epochs(make_cfg, name, brackets):
    cfg = make_cfg("search=digits", f"search.scheduler={name}", "search.grace_epochs=20")
    rule = tune_runner.scheduler(cfg.search, max_epochs=6, searcher=None)
    assert isinstance(rule, AsyncHyperBandScheduler)
    assert len(rule._brackets) == brackets
    assert rule._time_attr == "epoch" and rule._max_t == 6
    assert rule._brackets[0]._rungs[-1][0] <= 6  # grace cut to the epochs there are


def test_trials_on_ray_train_leave_their_cpus_to_their_workers(make_cfg):
    local = make_cfg("search=digits")
    workers = make_cfg("search=digits", "cluster=ray", "cluster.num_workers=3")
    assert tune_runner.trial_cpus(local) == 1 and tune_runner.local_cpus(local, 4) is None
    assert tune_runner.trial_cpus(workers) < 0.1
    assert tune_runner.local_cpus(workers, 4) >= 4 * 3 + 1


@pytest.mark.parametrize(
    "override,message",
    [
        ("search.runner=tune", "search.runner"),
        ("search.scheduler=median", "search.scheduler"),
        ("search.reduction_factor=1", "search.reduction_factor"),
    ],
)
def test_bad_search_settings_are_refused(make_cfg, override, message):
    with pytest.raises(ConfigError, match=message):
        validate(make_cfg("search=digits", override))
