"""MLflow: where runs go, opening a run with its config and lineage, closing it with a status.

Every training is one MLflow run. The tracking URI is always passed explicitly: tools that
fall back to their own default (a `./mlruns` file store) would otherwise split the record.
"""

import fcntl
import json
import logging
import os
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil
import requests
from mlflow import MlflowClient
from mlflow.entities import Dataset, DatasetInput, InputTag, Metric, Param
from mlflow.environment_variables import (
    MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR,
    MLFLOW_HTTP_REQUEST_MAX_RETRIES,
    MLFLOW_HTTP_REQUEST_TIMEOUT,
    MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT,
)
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import RESOURCE_ALREADY_EXISTS, ErrorCode
from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

from dlpipe.config import secrets
from dlpipe.errors import ConfigError, TrackingError
from dlpipe.tracking.store import FAILURE_TAG as FAILURE_TAG
from dlpipe.tracking.store.location import project_root as project_root
from dlpipe.tracking.store.location import resolve_uri as resolve_uri
from dlpipe.tracking.store.location import server_address, sqlite_file

# FAILURE_TAG, project_root and resolve_uri live in dlpipe.tracking.store, which the commands that
# only read runs use without MLflow; they stay part of this module's interface.
log = logging.getLogger(__name__)

# The store's client, and the error a request to the store raises (no such run, model or
# artifact; a server that gave up), as the rest of dlpipe names them: this module is the
# seam for the tracking store, and the modules using it import no MLflow of their own.
Client = MlflowClient
TrackingStoreError = MlflowException

# MLflow caps a log_batch call at 100 params.
_PARAMS_PER_BATCH = 100
# A param value longer than this is refused by MLflow.
_MAX_PARAM_LENGTH = 6000
# The data hash's hex digits a dataset input shows: a commit's short hash has as many.
_DIGEST_LENGTH = 12
# Runs that may log one new data set at the same moment (see _lost_insert_race).
_DATASET_ATTEMPTS = 3
# Which process holds a run open: a RUNNING run whose process is gone was killed.
_HOST_TAG, PID_TAG, _PID_START_TAG = "dlpipe.host", "dlpipe.pid", "dlpipe.pid_started"

# How long a training rides out a tracking server that does not answer (tracking.retry_seconds).
DEFAULT_RETRY_SECONDS = 30.0
# MLflow refuses more retries than this (its _MLFLOW_HTTP_REQUEST_MAX_RETRIES_LIMIT).
_MAX_RETRIES = 10
# urllib3, which retries for MLflow, never sleeps longer than this between two tries.
_MAX_BACKOFF_SECONDS = 120
# A request with no answer in this time is given up and retried. MLflow's own 120 s would let
# a server host that vanished without refusing connections stall a training for 20 minutes.
_REQUEST_TIMEOUT_SECONDS = 10

# The sqlite store announces its creation and schema migrations at INFO on first use.
logging.getLogger("alembic").setLevel(logging.WARNING)
logging.getLogger("mlflow.store.db.utils").setLevel(logging.WARNING)
# Artifacts fetched here (checkpoints, configs) are small: a progress bar is only noise.
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


def check_reachable(uri: str, timeout: float = 5.0) -> None:
    """Fail fast, naming the URI, when the store is unusable; MLflow itself retries for minutes."""
    if uri.startswith(("http://", "https://")):
        try:
            # No login: the health check needs none (MLflow's client sends the URI's).
            address, _ = server_address(uri)
            urllib.request.urlopen(f"{address}/health", timeout=timeout).close()
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise TrackingError(
                f"tracking server {secrets.mask_text(uri)} is unreachable ({reason}): start it "
                "or set tracking.uri / MLFLOW_TRACKING_URI to a running server"
            ) from exc
    elif uri.startswith("sqlite:"):
        # MLflow retries opening a sqlite file for two minutes; none of these would mend.
        path = sqlite_file(uri)
        if not path.parent.is_dir():
            raise TrackingError(
                f"tracking store {uri} cannot be created: folder {path.parent} does not exist"
            )
        written = path if path.exists() else path.parent
        # As the process's effective user, who opens the file (os.access asks of the real one).
        as_self = os.access in os.supports_effective_ids
        if not os.access(written, os.R_OK | os.W_OK, effective_ids=as_self):
            raise TrackingError(f"tracking store {uri} is read-only: make {written} writable")


def experiment_id(client: MlflowClient, name: str) -> str:
    """The id of experiment `name`, created if new (here, or by a process starting with us)."""
    experiment = client.get_experiment_by_name(name)
    if experiment:
        return experiment.experiment_id
    try:
        return client.create_experiment(name)
    except MlflowException as exc:
        if exc.error_code != ErrorCode.Name(RESOURCE_ALREADY_EXISTS):
            raise
        return client.get_experiment_by_name(name).experiment_id


def open_run(client: MlflowClient, experiment: str, tags: dict[str, str]) -> str:
    """Create a run carrying `tags`; return its id. Close it with `closing_run`.

    Runs that killed processes on this host left RUNNING in the experiment are marked
    FAILED first, so a new run (or sweep) cleans up after a crashed one.
    """
    experiment_id_ = experiment_id(client, experiment)
    fail_orphans(client, experiment_id_)
    return client.create_run(experiment_id_, tags={**tags, **_owner_tags()}).info.run_id


def reopen_run(client: MlflowClient, run_id: str) -> None:
    """Set an interrupted run RUNNING again, owned by this process; close it with `closing_run`."""
    if FAILURE_TAG in client.get_run(run_id).data.tags:
        client.delete_tag(run_id, FAILURE_TAG)
    for key, value in _owner_tags().items():
        client.set_tag(run_id, key, value)
    client.update_run(run_id, status="RUNNING")


def _owner_tags() -> dict[str, str]:
    me = psutil.Process()
    return {
        _HOST_TAG: socket.gethostname(),
        PID_TAG: str(me.pid),
        _PID_START_TAG: f"{me.create_time():.2f}",
    }


def owner_alive(tags: dict[str, str]) -> bool:
    """Whether the process that opened a run still runs (not just a later one with its pid)."""
    try:
        started = psutil.Process(int(tags[PID_TAG])).create_time()
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
    orphans = [run for run in running if not owner_alive(run.data.tags)]
    for run in orphans:
        pid = run.data.tags[PID_TAG]
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


def log_data_input(client: MlflowClient, run_id: str, meta: dict, prepared: Path) -> None:
    """Record the prepared data (its meta.json: `meta`) as the run's dataset input: MLflow's
    runs table (its Dataset column) and `search_runs` then show which data trained the run.

    Named as the data set is (a user's file or folder by its stem, else the built-in set's
    name), with the head of the data hash as digest (MLflow keeps 36 characters; the whole
    hash is the tag dlpipe.data_hash); its source is the user's file, else `prepared`.
    """
    path = meta["data"].get("path")
    dataset = Dataset(
        name=Path(path).stem if path else meta["name"],
        digest=meta["hash"][:_DIGEST_LENGTH],
        source_type="local",
        source=json.dumps({"uri": str(Path(path or prepared).resolve())}),
        profile=json.dumps({"num_rows": sum(meta["sizes"].values()), "splits": meta["sizes"]}),
    )
    context = InputTag(MLFLOW_DATASET_CONTEXT, "training")
    for attempt in range(_DATASET_ATTEMPTS):
        try:
            client.log_inputs(run_id, datasets=[DatasetInput(dataset, [context])])
            return
        except MlflowException as exc:
            if attempt + 1 == _DATASET_ATTEMPTS or not _lost_insert_race(exc):
                raise


def _lost_insert_race(exc: MlflowException) -> bool:
    """MLflow looks a data set up, then inserts it when missing: two runs logging the same
    new data set at once can both miss it, and the second insert breaks the table's unique
    key. Logged again, the data set is found and only the run's link to it is written."""
    text = str(exc).lower()
    return "unique" in text or "duplicate" in text


def one_line(exc: BaseException) -> str:
    """`Type: first line` of an exception; only the first sentence of a long line. Secrets
    masked: it becomes a run's failure tag and part of messages, and may quote a URI."""
    lines = secrets.mask_text(str(exc)).strip().splitlines()
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
    the tag `dlpipe.pruned`, and is raised on. A tracking server that stopped answering for
    longer than the retries last raises a TrackingError naming it (see `lost_server`).
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
        if gave_up_on_server(exc):
            raise lost_server(client, run_id) from exc
        try:
            client.set_tag(run_id, FAILURE_TAG, one_line(exc))
        finally:
            client.set_terminated(run_id, "FAILED")
        raise
    try:
        client.set_terminated(run_id, "FINISHED")
    except MlflowException as exc:
        if gave_up_on_server(exc):
            raise lost_server(client, run_id, close=False) from exc
        raise


def gave_up_on_server(exc: BaseException) -> bool:
    """Whether `exc` comes from MLflow giving up on an HTTP request after all its retries
    (no connection, a dropped one, no answer in time, 5xx answers), not from an answer."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, requests.exceptions.RequestException):
            return True
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return False


def lost_server(client: MlflowClient, run_id: str, close: bool = True) -> TrackingError:
    """The error that stops a training whose tracking server is gone, once `close` has
    tried (once, without another round of retries) to end its run FAILED."""
    where = secrets.mask_text(client.tracking_uri)
    reason = (
        f"tracking server {where} stopped answering: no answer after retrying for "
        f"{retrying_seconds():.0f} s (tracking.retry_seconds)"
    )
    closed = False
    if close:
        try:
            with _single_try():
                client.set_tag(run_id, FAILURE_TAG, reason)
                client.set_terminated(run_id, "FAILED")
            closed = True
        except MlflowException:
            pass  # still gone: said below
    status = (
        f"run {run_id} is FAILED"
        if closed
        else f"run {run_id} stays RUNNING there until the next training on this host marks "
        "it FAILED or resumes it (`dlpipe runs --stale` marks it now)"
    )
    return TrackingError(f"{reason}; {status}. Check the server, then train again")


@contextmanager
def _single_try() -> Iterator[None]:
    """MLflow requests without retries, for closing a run on a server that just outlasted
    them: another full round per request would only delay the error."""
    saved = os.environ.get(MLFLOW_HTTP_REQUEST_MAX_RETRIES.name)
    os.environ[MLFLOW_HTTP_REQUEST_MAX_RETRIES.name] = "0"
    try:
        yield
    finally:
        if saved is None:
            del os.environ[MLFLOW_HTTP_REQUEST_MAX_RETRIES.name]
        else:
            os.environ[MLFLOW_HTTP_REQUEST_MAX_RETRIES.name] = saved


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


def log_artifact(client: MlflowClient, run_id: str, path: Path, folder: str) -> None:
    """Keep the file `path` in the run, under the artifact folder `folder`."""
    client.log_artifact(run_id, str(path), folder)


def log_text(client: MlflowClient, run_id: str, text: str, name: str) -> None:
    """Keep `text` in the run as the artifact file `name`."""
    client.log_text(run_id, text, name)


def download_artifact(client: MlflowClient, run_id: str, name: str, folder: str | Path) -> Path:
    """The run's artifact `name`, copied into `folder` (an existing one, left to the caller).

    Raises:
        TrackingStoreError: no such run or artifact (OSError: it cannot be written there).
    """
    return Path(client.download_artifacts(run_id, name, str(folder)))


def run_status(client: MlflowClient, run_id: str) -> str | None:
    """The run's status (RUNNING, FINISHED, FAILED, KILLED), or None when the store has no
    such run (it was recorded in another store)."""
    try:
        return client.get_run(run_id).info.status
    except MlflowException:
        return None


def load_model(client: MlflowClient, uri: str):
    """The pyfunc model at `uri` (models:/name@alias, models:/name/version, models:/id) in
    the client's store.

    Raises:
        TrackingStoreError: no such model, or one that cannot be loaded.
    """
    import mlflow
    import mlflow.pyfunc

    # pyfunc resolves models:/ URIs with the global registry, not with a client.
    mlflow.set_tracking_uri(client.tracking_uri)
    return mlflow.pyfunc.load_model(uri)


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


def get_client(uri: str, retry_seconds: float = DEFAULT_RETRY_SECONDS) -> MlflowClient:
    """A client on a store that answered one cheap request, or a TrackingError naming `uri`.

    From then on, a request to a server that does not answer is retried for `retry_seconds`
    (see `retry_policy`), and a new sqlite store is created by one process at a time.
    """
    use_retry_policy(retry_seconds)
    if secrets.mask_text(uri) != uri:
        # MLflow prints the address of each run it ends, login and all (a pipeline stage
        # masks what it prints, the `dlpipe` command does not).
        os.environ[MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT.name] = "true"
    check_reachable(uri)
    try:
        with _creating_store(uri):
            client = MlflowClient(tracking_uri=uri)
            client.search_experiments(max_results=1)
    except Exception as exc:  # unknown scheme, refused store, bad database: all the same to a user
        raise TrackingError(
            f"tracking store {secrets.mask_text(uri)} cannot be used ({one_line(exc)}): set "
            "tracking.uri or MLFLOW_TRACKING_URI to a server (http://host:port) or "
            "sqlite:///path/mlflow.db"
        ) from exc
    return client


def retry_schedule(retries: int, factor: int = 1) -> list[float]:
    """The sleeps before each of MLflow's retries of a request (urllib3's backoff): the
    first retry at once, then factor * 2^k seconds, each at most 2 minutes."""
    return [0.0] + [float(min(_MAX_BACKOFF_SECONDS, factor * 2**k)) for k in range(1, retries)]


def retry_policy(seconds: float) -> dict[str, str]:
    """MLflow's HTTP retry settings that keep retrying a failed request for `seconds` or a
    little longer (the backoff doubles, so by up to twice as long).

    MLflow retries refused and dropped connections, unanswered requests and 408/429/5xx
    answers, for every request (a repeated metric batch is stored once). Backoff factor 1,
    the smallest whole one it takes, waits 0, 2, 4, 8, 16 s: 5 retries span 30 s.
    """
    for retries in range(1, _MAX_RETRIES + 1):
        if sum(retry_schedule(retries)) >= seconds:
            return {
                MLFLOW_HTTP_REQUEST_MAX_RETRIES.name: str(retries),
                MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR.name: "1",
            }
    longest = sum(retry_schedule(_MAX_RETRIES))
    raise ConfigError(f"tracking.retry_seconds must be in [0, {longest:g}], got {seconds:g}")


def use_retry_policy(seconds: float) -> None:
    """Apply `retry_policy(seconds)` to every MLflow client of this process and its children
    (MLflow reads these variables at each request). A MLFLOW_HTTP_REQUEST_TIMEOUT already
    set, for large artifacts over a slow link, is kept."""
    os.environ.update(retry_policy(seconds))
    os.environ.setdefault(MLFLOW_HTTP_REQUEST_TIMEOUT.name, str(_REQUEST_TIMEOUT_SECONDS))


def retrying_seconds() -> float:
    """How long MLflow retries a request under the retry settings in force."""
    retries = MLFLOW_HTTP_REQUEST_MAX_RETRIES.get()
    return sum(retry_schedule(retries, MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR.get()))


@contextmanager
def _creating_store(uri: str) -> Iterator[None]:
    """Open a new sqlite store one process at a time: MLflow creates its tables without a
    lock, and processes starting together on it fail in each other's migrations. An existing
    store is opened at once (opening takes seconds, which would add up in a queue)."""
    if not uri.startswith("sqlite:///"):
        yield
        return
    database = Path(uri.removeprefix("sqlite:///")).resolve()
    # The lock is on the store's folder, which exists (see check_reachable): no lock file
    # is left behind.
    folder = os.open(database.parent, os.O_RDONLY)
    try:
        fcntl.flock(folder, fcntl.LOCK_EX)
        # Whoever wrote the file did so holding this lock, and has let go of it: it is whole.
        if database.is_file() and database.stat().st_size > 0:
            fcntl.flock(folder, fcntl.LOCK_UN)
        yield
    finally:
        os.close(folder)
