"""Sweeps in MLflow: one parent run per Hydra multirun, a child run per job.

`MlflowSweepCallback` (enabled in conf/config.yaml under hydra.callbacks) opens the parent
when a multirun starts and, when it ends, records on it how many jobs finished or failed
and the best job's score and overrides; for k-fold cross-validation (jobs that differ only
in data.split.fold), the mean and standard deviation over the folds instead. A job finds
its parent by the sweep folder it runs in (tag `dlpipe.sweep_dir`), through the tracking
store, so this works wherever the jobs run, in-process or on Ray workers, as long as they
share the store.
"""

import logging
import shlex
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from dlpipe.config import secrets
from dlpipe.exits import fail
from dlpipe.tracking.lineage import command_line
from dlpipe.tracking.store import FAILURE_TAG

# Hydra builds its callbacks as every stage starts, before the config is checked: MLflow,
# which takes seconds to load, is imported where a sweep uses it (dlpipe.tracking.client too).
if TYPE_CHECKING:
    from dlpipe.tracking.client import Client

log = logging.getLogger(__name__)

SWEEP_DIR_TAG = "dlpipe.sweep_dir"
OVERRIDES_TAG = "dlpipe.overrides"
# On a k-fold cross-validation's parent run: its number of folds.
KFOLD_TAG = "dlpipe.kfold"
FOLD_KEY = "data.split.fold"


def _key(sweep_dir: str) -> str:
    return str(Path(sweep_dir).resolve())


def find_parent(client: "Client", experiment: str, sweep_dir: str) -> str | None:
    """The parent run of the sweep writing to `sweep_dir`, if one was opened."""
    from dlpipe.tracking import client as tracking

    found = client.search_runs(
        [tracking.experiment_id(client, experiment)],
        filter_string=f"tags.`{SWEEP_DIR_TAG}` = '{_key(sweep_dir)}'",
        max_results=1,
    )
    return found[0].info.run_id if found else None


@dataclass(frozen=True)
class SweepJob:
    """A job of a Hydra multirun: the sweep's folder, and the overrides of this job."""

    sweep_dir: str
    overrides: list[str]


def child_tags(client: "Client", experiment: str, job: SweepJob) -> dict:
    """Tags that make a job's run a child of its sweep's parent run in the MLflow UI."""
    tags = {OVERRIDES_TAG: shlex.join(map(secrets.mask_override, job.overrides))}
    parent = find_parent(client, experiment, job.sweep_dir)
    if parent:
        tags["mlflow.parentRunId"] = parent
    else:
        log.warning(
            f"no parent run for sweep {job.sweep_dir}: is hydra.callbacks.mlflow_sweep set?"
        )
    return tags


def note_stopped(config: DictConfig, reason: str) -> None:
    """Say on the parent run of a sweep that stopped part way why it did: the parent then
    ends FAILED (see MlflowSweepCallback.on_multirun_end, which Hydra calls in any case)."""
    from dlpipe.tracking import client as tracking

    client = tracking.get_client(tracking.resolve_uri(config.tracking.uri))
    parent = find_parent(client, config.tracking.experiment, config.hydra.sweep.dir)
    if parent:
        client.set_tag(parent, tracking.FAILURE_TAG, reason)


def close_trial_runs(
    config: DictConfig, numbers: list[int], status: str, reason: str | None = None
) -> None:
    """End the runs of a search's trials (by number) that their jobs could not close:
    `status` FINISHED tagged dlpipe.pruned (stopped early), KILLED or FAILED with `reason`.
    Found by study and trial number, so wherever the trials ran."""
    from dlpipe.tracking import client as tracking

    if not numbers:
        return
    client = tracking.get_client(tracking.resolve_uri(config.tracking.uri))
    found = client.search_runs(
        [tracking.experiment_id(client, config.tracking.experiment)],
        filter_string=(
            f"tags.`optuna.study` = '{config.search.study}' and attributes.status = 'RUNNING'"
        ),
        max_results=50000,
    )
    for run in found:
        if int(run.data.tags.get("optuna.trial", -1)) not in numbers:
            continue
        if status == "FINISHED":
            client.set_tag(run.info.run_id, "dlpipe.pruned", "true")
        if reason:
            client.set_tag(run.info.run_id, FAILURE_TAG, reason)
        client.set_terminated(run.info.run_id, status)


def _check_search(config: DictConfig) -> None:
    """A bad search setting or space stops the sweep before its first trial, with one line."""
    from dlpipe.config.schema.validate import validate
    from dlpipe.errors import ConfigError
    from dlpipe.search.study import check_space

    try:
        validate(OmegaConf.masked_copy(config, [key for key in config if key != "hydra"]))
        check_space(config)
    except ConfigError as exc:
        fail(str(exc))


def swept_keys(overrides: list[str]) -> list[str]:
    """`+model=mlp,cnn` -> `model`: the keys a sweep's command line sets."""
    return [item.split("=", 1)[0].lstrip("+~") for item in overrides if "=" in item]


class MlflowSweepCallback(Callback):
    """Opens the sweep's parent run and closes it with a summary of its jobs."""

    def __init__(self) -> None:
        self.client: Client | None = None
        self.parent: str | None = None

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        from dlpipe.tracking import client as tracking

        self.client = tracking.get_client(tracking.resolve_uri(config.tracking.uri))
        overrides = list(config.hydra.overrides.task)
        tags = {
            SWEEP_DIR_TAG: _key(config.hydra.sweep.dir),
            "mlflow.runName": f"sweep {Path(config.hydra.sweep.dir).name}",
            "dlpipe.command": command_line(),
            "dlpipe.sweeper": config.hydra.sweeper._target_.rsplit(".", 1)[-1],
        }
        study = OmegaConf.select(config, "search.study")
        if study:
            _check_search(config)
            tags["optuna.study"] = study
        self.parent = tracking.open_run(self.client, config.tracking.experiment, tags)
        shown = shlex.join(map(secrets.mask_override, overrides))
        tracking.log_params(self.client, self.parent, {"sweep.overrides": shown})
        log.info(f"sweep parent run {self.parent}")

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if not self.parent:
            return
        from dlpipe.tracking import client as tracking

        children = self.client.search_runs(
            [tracking.experiment_id(self.client, config.tracking.experiment)],
            filter_string=f"tags.mlflow.parentRunId = '{self.parent}'",
            max_results=50000,
        )
        summary = summarise(children)
        tracking.log_metrics(self.client, self.parent, summary.counts)
        if is_kfold(children):
            self._record_folds(children)
        elif summary.best is not None:
            self._record_best(summary.best, summary.metric, list(config.hydra.overrides.task))
        self._record_search(config)
        failed, jobs = summary.counts["sweep/failed"], summary.counts["sweep/jobs"]
        if failed:
            log.warning(
                f"{failed} of {jobs} jobs failed: each child run of {self.parent} "
                "carries its reason in the tag dlpipe.failure"
            )
        stopped = FAILURE_TAG in self.client.get_run(self.parent).data.tags  # see note_stopped
        status = "FINISHED" if summary.counts["sweep/finished"] and not stopped else "FAILED"
        self.client.set_terminated(self.parent, status)

    def _record_search(self, config: DictConfig) -> None:
        """A search's trial counts, best parameters and Optuna plots, on the parent run."""
        if not OmegaConf.select(config, "search.study"):
            return
        from dlpipe.search.study import study_counts
        from dlpipe.tracking import client as tracking

        counts = study_counts(config.search.storage, config.search.study)
        tracking.log_metrics(self.client, self.parent, counts)
        folder = Path(config.hydra.sweep.dir)
        for path in [folder / "best_params.yaml", *sorted(folder.glob("optuna_*.png"))]:
            if path.exists():
                self.client.log_artifact(self.parent, str(path), "search")

    def _record_folds(self, children: list) -> None:
        """A cross-validation's folds are one estimate, not rivals: their spread, no best."""
        from dlpipe.tracking import client as tracking

        tracking.log_metrics(self.client, self.parent, fold_spread(children))
        folds = children[0].data.params.get("data.split.folds") or str(len(children))
        self.client.set_tag(self.parent, KFOLD_TAG, folds)
        log.info(f"{folds}-fold cross-validation: mean and std of each metric on the parent")

    def _record_best(self, best, metric: str, overrides: list[str]) -> None:
        from dlpipe.tracking import client as tracking

        value = best.data.metrics[metric]
        tracking.log_metrics(self.client, self.parent, {metric: value})
        chosen = dict(item.split("=", 1) for item in shlex.split(best.data.tags[OVERRIDES_TAG]))
        keys = [key for key in chosen if key.lstrip("+~") in swept_keys(overrides)]
        tracking.log_params(self.client, self.parent, {f"best.{k}": chosen[k] for k in keys})
        self.client.set_tag(self.parent, "dlpipe.best_run", best.info.run_id)
        log.info(f"best job: run {best.info.run_id} {metric} {value:.4f}")


@dataclass(frozen=True)
class Summary:
    counts: dict[str, int]
    best: Any  # the best finished job's mlflow Run, or None
    metric: str | None  # what it is best on: best/<the jobs' checkpoint monitor>


def summarise(children: list) -> Summary:
    """Job counts by outcome and the finished job with the best score on the metric the
    jobs were checkpointed on."""
    finished = [run for run in children if run.info.status == "FINISHED"]
    counts = {
        "sweep/jobs": len(children),
        "sweep/finished": len(finished),
        "sweep/failed": sum(run.info.status == "FAILED" for run in children),
    }
    found = watched(finished)
    if found is None:
        return Summary(counts, None, None)
    metric, mode = f"best/{found[0]}", found[1]
    scored = [run for run in finished if metric in run.data.metrics]
    pick = max if mode == "max" else min
    best = pick(scored, key=lambda run: run.data.metrics[metric]) if scored else None
    return Summary(counts, best, metric)


def is_kfold(children: list) -> bool:
    """Whether the jobs are one k-fold cross-validation: each sets data.split.fold, and
    their overrides are otherwise the same."""
    rest = set()
    for run in children:
        overrides = shlex.split(run.data.tags.get(OVERRIDES_TAG, ""))
        others = tuple(item for item in overrides if swept_keys([item]) != [FOLD_KEY])
        if len(others) == len(overrides):
            return False
        rest.add(others)
    return len(rest) == 1


def fold_spread(children: list) -> dict[str, float]:
    """`<metric>/mean` and `<metric>/std` (the standard deviation over the folds, ddof 0)
    of each metric every finished job logged, its last value in each."""
    finished = [run for run in children if run.info.status == "FINISHED"]
    if not finished:
        return {}
    shared = set.intersection(*(set(run.data.metrics) for run in finished))
    spread = {}
    for metric in sorted(shared):
        values = [run.data.metrics[metric] for run in finished]
        spread[f"{metric}/mean"] = statistics.fmean(values)
        spread[f"{metric}/std"] = statistics.pstdev(values)
    return spread


def watched(runs: list) -> tuple[str, str] | None:
    """The metric `runs` were checkpointed on and which way it is better, from their params
    (a training names them where the config leaves them to its task); None when the runs
    differ (jobs of different tasks) or there are none."""
    found = {
        (
            run.data.params.get("trainer.checkpoint_monitor"),
            run.data.params.get("trainer.checkpoint_mode"),
        )
        for run in runs
    }
    if len(found) != 1:
        if found:
            log.warning(
                f"the jobs were checkpointed on different metrics {sorted(map(str, found))}: "
                "no best job"
            )
        return None
    return found.pop()
