"""Shared fixtures: configs composed from conf/ and a throw-away copy of the project."""

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

ROOT = Path(__file__).resolve().parent.parent
CONF_DIR = ROOT / "conf"
# The interpreter running the tests has dlpipe installed; stages must use it too.
BIN_DIR = Path(sys.executable).parent


@pytest.fixture
def make_cfg():
    """Compose conf/ with overrides, as `python pipelines/train.py <overrides>` would."""

    def _compose(*overrides: str):
        with initialize_config_dir(str(CONF_DIR)):
            return compose("config", overrides=list(overrides))

    return _compose


def project_files() -> list[str]:
    """Files git would commit: tracked ones plus new ones that are not ignored."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\n")
    return [name for name in listed if name and (ROOT / name).is_file()]


def git_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        PATH=f"{BIN_DIR}{os.pathsep}{env.get('PATH', '')}",
        GIT_AUTHOR_NAME="dlpipe tests",
        GIT_AUTHOR_EMAIL="tests@dlpipe.invalid",
        GIT_COMMITTER_NAME="dlpipe tests",
        GIT_COMMITTER_EMAIL="tests@dlpipe.invalid",
        DVC_NO_ANALYTICS="1",
        PYTHONDONTWRITEBYTECODE="1",
    )
    env.pop("MLFLOW_TRACKING_URI", None)
    return env


def run(cmd: list[str], cwd: Path, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
    done = subprocess.run(cmd, cwd=cwd, env=git_env(), capture_output=True, text=True, **kwargs)
    if check and done.returncode != 0:
        raise AssertionError(f"{cmd} exited {done.returncode}\n{done.stdout}\n{done.stderr}")
    return done


def make_project(repo: Path) -> Path:
    """A fresh git repository holding this project's files, committed: a clean clone."""
    for name in project_files():
        target = repo / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, target)
    run(["git", "init", "--quiet"], repo)
    run(["git", "add", "--all"], repo)
    run(["git", "commit", "--quiet", "-m", "project"], repo)
    return repo


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return make_project(tmp_path / "project")


def start_until(cmd: list[str], cwd: Path, marker: str) -> subprocess.Popen:
    """Start `cmd` and return once a line of its output contains `marker` (to interrupt it)."""
    process = subprocess.Popen(
        cmd, cwd=cwd, env=git_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    for line in process.stdout:
        if marker in line:
            return process
    process.wait()
    raise AssertionError(f"{cmd} ended (exit {process.returncode}) before printing {marker!r}")


def free_port() -> int:
    """A port nothing on 127.0.0.1 listens on (for a server to take, or to find unreachable)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
