"""README's "A cluster of several hosts", run as written: each bash block on the host it
names (network namespaces on one bridge; this machine is the database and tracking host),
the variables of its first block set to this cluster's addresses and folders."""

import contextlib
import os
import pwd
import re
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
from mlflow import MlflowClient

from tests.conftest import BIN_DIR, ROOT, git_env, make_project
from tests.hosts import Hosts, can_make_hosts
from tests.postgres import PG_BIN

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not can_make_hosts(), reason="hosts are network namespaces: needs root"),
]
SECTION = "### A cluster of several hosts"
HEAD, WORKERS = 0, (1, 2)


def recipe() -> dict[str, str]:
    """The section's bash blocks by the comment that opens each (where it runs)."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index(SECTION) :]
    section = section[: section.index("\n## ")]
    blocks = re.findall(r"```bash\n# ([^\n]+)\n(.*?)```", section, flags=re.S)
    return dict(blocks)


@pytest.fixture
def hosts() -> Iterator[Hosts]:
    made = Hosts(3)
    try:
        made.up()
        yield made
    finally:
        made.down()  # every process on the hosts: Ray's nodes, the trainings


@pytest.fixture
def database_folder() -> Iterator[Path]:
    """PGDATA's parent, owned by the database's user (PostgreSQL refuses root)."""
    folder = Path(tempfile.mkdtemp(prefix="dlpipe-recipe-db-"))
    if os.geteuid() == 0:
        owner = pwd.getpwnam("postgres")
        os.chown(folder, owner.pw_uid, owner.pw_gid)
    try:
        yield folder
    finally:
        _stop_postgres(folder / "pg")
        subprocess.run(["rm", "-rf", str(folder)], check=False)


def _stop_postgres(data: Path) -> None:
    """Whatever the test did: the server whose pid its data folder records."""
    pid_file = data / "postmaster.pid"
    if pid_file.exists():
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid_file.read_text().split()[0]), signal.SIGQUIT)


def _variables(hosts: Hosts, shared: Path, database: Path) -> dict[str, str]:
    return {
        "DB_HOST": hosts.gateway,
        "HEAD": hosts.address(HEAD),
        "SHARED": str(shared),
        "PGPASSWORD": "recipe-password",
        "PGDATA": str(database / "pg"),
        "RAY_AUTH_MODE": "token",
    }


def _env(variables: dict[str, str], host: int | None, hosts: Hosts) -> dict[str, str]:
    path = f"{BIN_DIR}:{PG_BIN}:{os.environ['PATH']}"
    env = {**git_env(), **variables, "PATH": path}
    if host is not None:
        # Each host's own Ray session folder, as on a machine of its own.
        env["RAY_TMPDIR"] = str(hosts.temp(host))
    return env


def _bash(block: str, as_database_owner: bool = False) -> list[str]:
    owner = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 and as_database_owner else []
    return [*owner, "bash", "-euo", "pipefail", "-c", block]


def _run(cmd: list[str], env: dict, cwd: Path, timeout: float = 900) -> str:
    done = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, (
        f"{cmd[-1]}\nexited {done.returncode}\n{done.stdout}\n{done.stderr}"
    )
    return done.stdout


def _wait_for_server(uri: str, process: subprocess.Popen, seconds: float = 90) -> None:
    import urllib.request

    deadline = time.monotonic() + seconds
    while True:
        try:
            urllib.request.urlopen(f"{uri}/health", timeout=2).close()
            return
        except OSError:
            assert process.poll() is None, f"mlflow server exited {process.returncode}"
            assert time.monotonic() < deadline, f"mlflow server not up within {seconds} s"
            time.sleep(0.5)


def test_the_cluster_recipe_runs_as_written(hosts: Hosts, database_folder: Path, tmp_path: Path):
    blocks = recipe()
    assert list(blocks) == [
        "every host",
        "the database host",
        "the tracking host",
        "the head",
        "each worker host",
        "the head: a training and a search",
        "each Ray host, to tear down",
        "the database host, to tear down",
    ]
    shared = tmp_path / "shared"
    make_project(shared / "project")
    variables = _variables(hosts, shared, database_folder)
    # The first block only sets these: its values are examples, the test's are this cluster's.
    assert set(re.findall(r"(\w+)=", blocks["every host"])) == set(variables)
    here = _env(variables, None, hosts)

    _run(_bash(blocks["the database host"], as_database_owner=True), here, database_folder)
    tracking = subprocess.Popen(
        _bash(blocks["the tracking host"]),
        env={**here, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        uri = f"http://{hosts.gateway}:5000"
        _wait_for_server(uri, tracking)
        for host, block in [(HEAD, "the head"), *((w, "each worker host") for w in WORKERS)]:
            _run(hosts.command(host, _bash(blocks[block])), _env(variables, host, hosts), tmp_path)
        head_env = _env(variables, HEAD, hosts)
        work = blocks["the head: a training and a search"]
        _run(hosts.command(HEAD, _bash(work)), head_env, tmp_path)
        _check_the_record(uri, hosts, variables)
    finally:
        os.killpg(tracking.pid, signal.SIGKILL)
        tracking.wait(timeout=30)
    # `ray stop` stops every Ray process of the machine it runs on; here one machine holds
    # all the hosts, and other tests' clusters too: each host's Ray processes are stopped
    # by their ids instead (the `hosts` fixture), which is what it does on a host.
    assert blocks["each Ray host, to tear down"].strip() == "ray stop"
    _run(_bash(blocks["the database host, to tear down"], True), here, database_folder)
    assert not (database_folder / "pg" / "postmaster.pid").exists()


def _check_the_record(uri: str, hosts: Hosts, variables: dict[str, str]) -> None:
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("dlpipe").experiment_id
    runs = client.search_runs([experiment])
    assert {r.info.status for r in runs} == {"FINISHED"}
    (trained,) = [r for r in runs if "ray.worker.0" in r.data.tags]
    placed = {trained.data.tags[f"ray.worker.{rank}"].split()[0] for rank in (0, 1)}
    assert placed == {hosts.address(h) for h in WORKERS}
    trials = [r for r in runs if "optuna.trial" in r.data.tags]
    assert sorted(int(r.data.tags["optuna.trial"]) for r in trials) == [0, 1]
    assert len({r.data.tags["mlflow.parentRunId"] for r in trials}) == 1
    storage = f"postgresql://dlpipe:{variables['PGPASSWORD']}@{hosts.gateway}/optuna"
    (study,) = optuna.get_all_study_summaries(storage=storage)
    assert study.n_trials == 2
