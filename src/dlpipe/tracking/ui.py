"""`dlpipe ui`: the MLflow UI on the project's store, so that nobody needs to remember
the store's URI. It listens on 127.0.0.1 unless told otherwise, on a free port.

MLflow 3's UI opens on its GenAI home page; the address printed opens the experiment's
runs in its "Model training" view instead (`workflowType=machine_learning`), with the key
params and metrics of `dlpipe runs` as columns: a view kept in an experiment tag, as the
UI's own "share" button keeps one, and named in the address (`viewStateShareKey`).

MLflow's server runs in a process group of its own, which this command ends when it is
stopped (Ctrl-C, or a TERM signal): the server serves from child processes that would
outlive it otherwise.
"""

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys

from dlpipe.errors import DlpipeError, TrackingError
from dlpipe.tracking.store.location import masked, sqlite_file

# The UI needs no job runner (a handful of processes, for MLflow's GenAI jobs).
_ENVIRONMENT = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
_STOP_SECONDS = 10
VIEW_KEY = "dlpipe"
VIEW_TAG = f"mlflow.sharedViewState.{VIEW_KEY}"
# Columns of MLflow's runs table shown before the key params and metrics (its defaults).
_ATTRIBUTE_COLUMNS = ("Source", "Models", "Dataset")
# The latest runs whose params and metrics make the columns.
_VIEWED_RUNS = 100


def serve(uri: str, host: str, port: int | None, experiment: str) -> int:
    """Run the UI on `uri` until stopped; its exit code (0 once stopped by the user).

    Raises:
        TrackingError: a sqlite store that does not exist yet.
        DlpipeError: the address cannot be listened on.
    """
    if uri.startswith(("http://", "https://")):
        print(f"the runs are on the tracking server {masked(uri)}: its UI is at that address")
        return 0
    if uri.startswith("sqlite:") and not sqlite_file(uri).is_file():
        raise TrackingError(f"no tracking store at {sqlite_file(uri)}: train first")
    port = listening_port(host, port)
    view = runs_view(uri, experiment)
    command = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri]
    server = subprocess.Popen(
        [*command, "--host", host, "--port", str(port)],
        env={**_ENVIRONMENT, **os.environ},
        start_new_session=True,
    )
    address = f"http://{host}:{port}"
    print(f"MLflow UI on {masked(uri)}: {address}{view or ''} (Ctrl-C stops it)")
    if view:
        print(f"their charts: {address}{view}&compareRunsMode=CHART", flush=True)
    else:
        print(f"no runs of experiment '{experiment}' yet: train first", flush=True)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        return server.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        _stop(server)


def runs_view(uri: str, experiment: str) -> str | None:
    """The address, after the host, of the experiment's runs table in MLflow's UI, its key
    params and metrics (those `dlpipe runs` shows, of its latest runs) as columns; None
    when the store holds no such experiment."""
    from dlpipe.tracking import client as tracking
    from dlpipe.tracking import listing as runs
    from dlpipe.tracking.store import open_store

    client = tracking.get_client(uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return None
    latest = open_store(uri).search(experiment, [], None, _VIEWED_RUNS)
    columns = [f"attributes.`{name}`" for name in _ATTRIBUTE_COLUMNS]
    columns += [f"{key.kind}.`{key.name}`" for key in runs.key_columns(latest)]
    view = json.dumps({"selectedColumns": columns})
    client.set_experiment_tag(found.experiment_id, VIEW_TAG, view)
    return (
        f"/#/experiments/{found.experiment_id}/runs"
        f"?workflowType=machine_learning&viewStateShareKey={VIEW_KEY}"
    )


def listening_port(host: str, port: int | None) -> int:
    """`port`, or a free one when None, once a probe could listen on it at `host` (the
    server takes it a moment later).

    Raises:
        DlpipeError: the port is taken, or the host is not an address of this machine.
    """
    with socket.socket() as probe:
        try:
            probe.bind((host, port or 0))
        except OSError as exc:
            raise DlpipeError(
                f"cannot listen on {host}{f' port {port}' if port else ''} "
                f"({exc.strerror or exc}): "
                "choose another --host or --port (none picks a free port)"
            ) from None
        return probe.getsockname()[1]


def _interrupt(signum: int, frame) -> None:
    raise KeyboardInterrupt


def _stop(server: subprocess.Popen) -> None:
    """End the server's whole process group: politely, then whatever is left, for good."""
    _signal_group(server, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        server.wait(timeout=_STOP_SECONDS)
    _signal_group(server, signal.SIGKILL)
    server.wait()


def _signal_group(server: subprocess.Popen, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # nothing of it is left
        os.killpg(server.pid, signum)
