"""MLflow: where runs go, opening a run with its config and lineage, closing it with a status.

Every training is one MLflow run. The tracking URI is always passed explicitly: tools that
fall back to their own default (a `./mlruns` file store) would otherwise split the record.
"""

import logging
import os
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil
from mlflow import MlflowClient
from mlflow.entities import Metric, Param

from dlpipe.errors import TrackingError

log = logging.getLogger(__name__)

# MLflow caps a log_batch call at 100 params.
_PARAMS_PER_BATCH = 100
# A param value longer than this is refused by MLflow.
_MAX_PARAM_LENGTH = 6000
FAILURE_TAG = "dlpipe.failure"
# Which process holds a run open: a RUNNING run whose process is gone was killed.
_HOST_TAG, _PID_TAG, _PID_START_TAG = "dlpipe.host", "dlpipe.pid", "dlpipe.pid_started"

# The sqlite store announces its schema migrations at INFO on first use.
logging.getLogger("alembic").setLevel(logging.WARNING)
# Artifacts fetched here (checkpoints, configs) are small: a progress bar is only noise.
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


def resolve_uri(setting: str | None) -> str:
    """tracking.uri if set, else MLFLOW_TRACKING_URI, else mlflow.db at the project root."""
    uri = setting or os.environ.get("MLFLOW_TRACKING_URI")
    return uri or f"sqlite:///{project_root(Path.cwd()) / 'mlflow.db'}"


def project_root(cwd: Path) -> Path:
    """The working directory, except in a queued DVC experiment: that runs in a throw-away
    copy under <project>/.dvc/tmp/exps/, and its runs belong in the project's store."""
    parts = cwd.resolve().parts
    for start in range(len(parts) - 2):
        if parts[start : start + 3] == (".dvc", "tmp", "exps"):
            return Path(*parts[:start])
    return cwd.resolve()


def check_reachable(uri: str, timeout: float = 5.0) -> None:
    """Fail fast, naming the URI, when the store is unusable; MLflow itself retries for minutes."""
    if uri.startswith(("http://", "https://")):
        try:
            urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=timeout).close()
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise TrackingError(
                f"tracking server {uri} is unreachable ({reason}): start it or set "
                "tracking.uri / MLFLOW_TRACKING_URI to a running server"
            ) from exc
    elif uri.startswith("sqlite:///"):
        folder = Path(uri.removeprefix("sqlite:///")).parent
        if not folder.is_dir():
            raise TrackingError(
                f"tracking store {uri} cannot be created: folder {folder} does not exist"
            )


def experiment_id(client: MlflowClient, name: str) -> str:
    experiment = client.get_experiment_by_name(name)
    return experiment.experiment_id if experiment else client.create_experiment(name)


def open_run(client: MlflowClient, experiment: str, tags: dict[str, str]) -> str:
    """Create a run carrying `tags`; return its id. Close it with `closing_run`.

    Runs that killed processes on this host left RUNNING in the experiment are marked
    FAILED first, so a new run (or sweep) cleans up after a crashed one.
    """
    experiment_id_ = experiment_id(client, experiment)
    fail_orphans(client, experiment_id_)
    return client.create_run(experiment_id_, tags={**tags, **_owner_tags()}).info.run_id


def _owner_tags() -> dict[str, str]:
    me = psutil.Process()
    return {
        _HOST_TAG: socket.gethostname(),
        _PID_TAG: str(me.pid),
        _PID_START_TAG: f"{me.create_time():.2f}",
    }


def _owner_alive(tags: dict[str, str]) -> bool:
    """Whether the process that opened a run still runs (not just a later one with its pid)."""
    try:
        started = psutil.Process(int(tags[_PID_TAG])).create_time()
    except psutil.NoSuchProcess:
        return False
    return f"{started:.2f}" == tags[_PID_START_TAG]


def fail_orphans(client: MlflowClient, experiment_id_: str) -> list[str]:
    """Mark FAILED, with the reason, this host's RUNNING runs whose process has ended.

    Returns their ids. Runs opened on other hosts are left alone: their processes
    cannot be seen from here.
    """
    host = socket.gethostname()
    running = client.search_runs(
        [experiment_id_],
        filter_string=f"attributes.status = 'RUNNING' and tags.`{_HOST_TAG}` = '{host}'",
        max_results=50000,
    )
    orphans = [run for run in running if not _owner_alive(run.data.tags)]
    for run in orphans:
        pid = run.data.tags[_PID_TAG]
        client.set_tag(
            run.info.run_id, FAILURE_TAG, f"its process ({pid} on {host}) ended without closing it"
        )
        client.set_terminated(run.info.run_id, "FAILED")
        log.warning(f"run {run.info.run_id} was left RUNNING by process {pid}, now gone: FAILED")
    return [run.info.run_id for run in orphans]


def log_params(client: MlflowClient, run_id: str, params: dict) -> None:
    """Log params in batches MLflow accepts, values cut to the length it allows."""
    items = [Param(key, str(value)[:_MAX_PARAM_LENGTH]) for key, value in params.items()]
    for start in range(0, len(items), _PARAMS_PER_BATCH):
        client.log_batch(run_id, params=items[start : start + _PARAMS_PER_BATCH])


def one_line(exc: BaseException) -> str:
    """`Type: first line` of an exception; only the first sentence of a long line."""
    lines = str(exc).strip().splitlines()
    text = lines[0] if lines else ""
    if len(text) > 160 and ". " in text:
        text = text.split(". ", 1)[0]
    return f"{type(exc).__name__}: {text}"


@contextmanager
def closing_run(
    client: MlflowClient, run_id: str, stopped_early: tuple[type[BaseException], ...] = ()
) -> Iterator[None]:
    """End the run FINISHED, or FAILED (reason tagged) on error, KILLED on Ctrl-C: never RUNNING.

    An exception of a `stopped_early` type (a pruned search trial) ends it FINISHED with
    the tag `dlpipe.pruned`, and is raised on.
    """
    try:
        yield
    except stopped_early:
        client.set_tag(run_id, "dlpipe.pruned", "true")
        client.set_terminated(run_id, "FINISHED")
        raise
    except (KeyboardInterrupt, SystemExit):
        # Lightning turns Ctrl-C into a graceful stop followed by sys.exit(1).
        client.set_terminated(run_id, "KILLED")
        raise
    except BaseException as exc:
        try:
            client.set_tag(run_id, FAILURE_TAG, one_line(exc))
        finally:
            client.set_terminated(run_id, "FAILED")
        raise
    client.set_terminated(run_id, "FINISHED")


def record_failure(
    client: MlflowClient, experiment: str, tags: dict[str, str], exc: BaseException
) -> str:
    """A FAILED run, reason tagged, for work that failed before its run opened."""
    run_id = open_run(client, experiment, {**tags, FAILURE_TAG: one_line(exc)})
    client.set_terminated(run_id, "FAILED")
    return run_id


def log_metrics(client: MlflowClient, run_id: str, values: dict[str, float], step: int = 0) -> None:
    """Log `values` at `step` (an epoch, or 0 for a run's summary numbers), timed now."""
    now = int(time.time() * 1000)
    metrics = [Metric(key, float(value), now, step) for key, value in values.items()]
    client.log_batch(run_id, metrics=metrics)


def last_steps(client: MlflowClient, run_id: str) -> dict[str, int]:
    """Each metric's last logged step (epoch) in the run."""
    keys = client.get_run(run_id).data.metrics
    return {key: max(m.step for m in client.get_metric_history(run_id, key)) for key in keys}


def epoch_history(client: MlflowClient, run_id: str) -> list[dict[str, float]]:
    """The run's metrics per epoch, as models/history.json holds them: one row per epoch."""
    rows: dict[int, dict[str, float]] = {}
    for key in client.get_run(run_id).data.metrics:
        for metric in client.get_metric_history(run_id, key):
            rows.setdefault(metric.step, {})[key] = metric.value
    return [{"epoch": epoch, **rows[epoch]} for epoch in sorted(rows)]


def get_client(uri: str) -> MlflowClient:
    """A client on a store that answered one cheap request, or a TrackingError naming `uri`."""
    check_reachable(uri)
    try:
        client = MlflowClient(tracking_uri=uri)
        client.search_experiments(max_results=1)
    except Exception as exc:  # unknown scheme, refused store, bad database: all the same to a user
        raise TrackingError(
            f"tracking store {uri} cannot be used ({one_line(exc)}): set tracking.uri or "
            "MLFLOW_TRACKING_URI to a server (http://host:port) or sqlite:///path/mlflow.db"
        ) from exc
    return client
