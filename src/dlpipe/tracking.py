"""MLflow: where runs go, opening a run with its config and lineage, closing it with a status.

Every training is one MLflow run. The tracking URI is always passed explicitly: tools that
fall back to their own default (a `./mlruns` file store) would otherwise split the record.
"""

import logging
import os
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mlflow import MlflowClient
from mlflow.entities import Metric, Param

from dlpipe.errors import TrackingError

# MLflow caps a log_batch call at 100 params.
_PARAMS_PER_BATCH = 100
# A param value longer than this is refused by MLflow.
_MAX_PARAM_LENGTH = 6000

# The sqlite store announces its schema migrations at INFO on first use.
logging.getLogger("alembic").setLevel(logging.WARNING)


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
    """Create a run carrying `tags`; return its id. Close it with `closing_run`."""
    return client.create_run(experiment_id(client, experiment), tags=tags).info.run_id


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
            client.set_tag(run_id, "dlpipe.failure", one_line(exc))
        finally:
            client.set_terminated(run_id, "FAILED")
        raise
    client.set_terminated(run_id, "FINISHED")


def log_metrics(client: MlflowClient, run_id: str, values: dict[str, float], step: int = 0) -> None:
    """Log `values` at `step` (an epoch, or 0 for a run's summary numbers), timed now."""
    now = int(time.time() * 1000)
    metrics = [Metric(key, float(value), now, step) for key, value in values.items()]
    client.log_batch(run_id, metrics=metrics)


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
