"""Reaching a Ray cluster: an existing one at cluster.address (or RAY_ADDRESS), else a
local one started in this process.

Ray retries an unreachable address for many minutes; here the head's port is probed
first, and Ray's own connection retries are bounded by cluster.connect_timeout.
"""

import os
import socket
import time
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlparse

from dlpipe.errors import ConfigError

_DEFAULT_PORTS = {"ray": 10001, "": 6379}


def cluster_address(setting: str | None) -> str | None:
    """cluster.address if set, else RAY_ADDRESS, else None (start a local cluster)."""
    return setting or os.environ.get("RAY_ADDRESS") or None


def _host_port(address: str) -> tuple[str, int]:
    parsed = urlparse(address if "://" in address else f"//{address}")
    port = parsed.port or _DEFAULT_PORTS.get(parsed.scheme, 6379)
    return parsed.hostname or "127.0.0.1", port


def check_reachable(address: str, timeout: float) -> None:
    """Fail with one line when nothing listens at the head's address."""
    if address in ("auto", "local"):
        return
    host, port = _host_port(address)
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection((host, port), timeout=min(2.0, timeout)).close()
            return
        except OSError as exc:
            if time.monotonic() >= deadline:
                raise ConfigError(
                    f"cluster.address={address}: no Ray cluster answers at {host}:{port} "
                    f"within {timeout:g} s ({exc.strerror or exc}): start one with "
                    "`ray start --head`, or fix cluster.address / RAY_ADDRESS"
                ) from exc
            time.sleep(0.5)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _bound_ray_retries(timeout: float) -> None:
    """Make Ray give up on a head that accepts connections but does not answer in time."""
    seconds = str(max(1, int(timeout)))
    os.environ.setdefault("RAY_gcs_server_port_wait_time_s", seconds)
    os.environ.setdefault("RAY_py_gcs_connect_timeout_s", seconds)
    os.environ.setdefault("RAY_gcs_rpc_server_connect_timeout_s", "1")
    os.environ.setdefault("RAY_CLIENT_INITIAL_CONNECTION_TIMEOUT_S", seconds)
    os.environ.setdefault("RAY_CLIENT_MAX_CONNECTION_TIMEOUT_S", seconds)


def _use_token_when_present() -> None:
    """Authenticate with the token `ray start` keeps in ~/.ray/auth_token, as `auto` does."""
    if "RAY_AUTH_MODE" not in os.environ and (Path.home() / ".ray" / "auth_token").exists():
        os.environ["RAY_AUTH_MODE"] = "token"


def connect(
    address_setting: str | None,
    timeout: float,
    code: Sequence[Path] = (),
    cpus: int | None = None,
    trains: bool = False,
) -> str:
    """Join the cluster at the configured address, or start a local one; return which.

    `code`: the folders of a user's own packages (dlpipe.config.usercode), shipped to every
    worker (Ray's py_modules), which may run where the project folder is not. `cpus`: the
    logical CPUs of a local cluster (None: the machine's cores). `trains`: Ray Train will
    run there, so a local cluster starts the dashboard its state API needs.
    """
    address = cluster_address(address_setting)
    if address is not None:
        # Read by Ray when it is imported.
        _bound_ray_retries(timeout)
        _use_token_when_present()
    import ray

    if ray.is_initialized():
        return "the Ray cluster this process already uses"
    runtime_env = {"worker_process_setup_hook": "dlpipe.cluster.worker_setup.use_node_interface"}
    if code:
        runtime_env["py_modules"] = [str(path) for path in code]
    if address is None:
        ray.init(
            address="local",
            num_cpus=cpus,
            log_to_driver=True,
            runtime_env=runtime_env,
            **_state_api(runtime_env, trains),
        )
        return "a local Ray cluster"
    check_reachable(address, timeout)
    if "://" not in address and address != "auto":
        # Where Ray's state API, asked from a worker, finds the cluster: else the last one
        # started on that machine, maybe another.
        runtime_env["env_vars"] = {"RAY_ADDRESS": address}
    try:
        ray.init(address=address, log_to_driver=True, runtime_env=runtime_env)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise ConfigError(
            f"cluster.address={address}: cannot join the Ray cluster there "
            f"({str(exc).splitlines()[0]}): check the address and that its Ray version is "
            f"{ray.__version__}"
        ) from exc
    return f"the Ray cluster at {address}"


def _state_api(runtime_env: dict, trains: bool) -> dict:
    """ray.init's settings of a local cluster's dashboard, which serves Ray's state API:
    Ray Train's placement-group cleaner asks it, every second, whether a training's
    controller lives. Without one each ask fails with a warning, and the training's end
    waits 12 s on the last. The dashboard listens on 127.0.0.1 only; the workers are told
    where, or they would ask the last cluster started on this machine."""
    if not trains:
        return {"include_dashboard": False}
    port = _free_port()
    runtime_env["env_vars"] = {"RAY_API_SERVER_ADDRESS": f"http://127.0.0.1:{port}"}
    return {"include_dashboard": True, "dashboard_host": "127.0.0.1", "dashboard_port": port}
