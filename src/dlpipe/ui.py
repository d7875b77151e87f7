"""`dlpipe ui`: the MLflow UI on the project's store, so that nobody needs to remember
the store's URI. It listens on 127.0.0.1 unless told otherwise, on a free port.

MLflow's server runs in a process group of its own, which this command ends when it is
stopped (Ctrl-C, or a TERM signal): the server serves from child processes that would
outlive it otherwise.
"""

import contextlib
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

from dlpipe.errors import DlpipeError, TrackingError
from dlpipe.store import masked

# The UI needs no job runner (a handful of processes, for MLflow's GenAI jobs).
_ENVIRONMENT = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
_STOP_SECONDS = 10


def serve(uri: str, host: str, port: int | None) -> int:
    """Run the UI on `uri` until stopped; its exit code (0 once stopped by the user).

    Raises:
        TrackingError: a sqlite store that does not exist yet.
        DlpipeError: the address cannot be listened on.
    """
    if uri.startswith(("http://", "https://")):
        print(f"the runs are on the tracking server {masked(uri)}: its UI is at that address")
        return 0
    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).is_file():
        raise TrackingError(f"no tracking store at {uri.removeprefix('sqlite:///')}: train first")
    port = listening_port(host, port)
    command = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri]
    server = subprocess.Popen(
        [*command, "--host", host, "--port", str(port)],
        env={**_ENVIRONMENT, **os.environ},
        start_new_session=True,
    )
    print(f"MLflow UI on {masked(uri)}: http://{host}:{port} (Ctrl-C stops it)", flush=True)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        return server.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        _stop(server)


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
