"""Shared fixtures: configs composed from conf/ and a throw-away copy of the project."""

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import yaml
from hydra import compose, initialize_config_dir
from xdist.scheduler import LoadFileScheduling

from tests.forked_stages import is_stage, run_stage

if TYPE_CHECKING:
    import torch

# One torch thread per process, here and in every stage a test starts (they inherit it):
# pytest runs a worker per core, each starting trainings, and torch's threads beyond the
# cores spin against each other (two concurrent trainings took 42 s with a thread per core
# against 13 s with one). Set before anything imports torch.
os.environ.setdefault("OMP_NUM_THREADS", "1")

ROOT = Path(__file__).resolve().parent.parent
CONF_DIR = ROOT / "conf"
# The interpreter running the tests has dlpipe installed; stages must use it too.
BIN_DIR = Path(sys.executable).parent
# The user id of `nobody`, whom root becomes to meet a folder it may not write.
NOBODY = 65534


# The modules that start Ray clusters. Under `make test` (`--dist loadfile`: each module's
# tests on one worker, sharing its fixtures) they are one unit of work, handed out first:
# two of them at once on two cores starve each other's clusters (2-3 times as long), and
# these longest modules, handed out last, would leave the other worker idle at the end.
RAY_MODULES = frozenset(
    f"tests/integration/{name}.py"
    for name in ("test_cluster", "test_ray_train", "test_recipe", "test_search_tune")
)


class RayModulesTogether(LoadFileScheduling):
    """pytest-xdist's `loadfile`, with RAY_MODULES one unit."""

    def _split_scope(self, nodeid: str) -> str:
        module = super()._split_scope(nodeid)
        return "ray" if module in RAY_MODULES else module


def pytest_xdist_make_scheduler(config: pytest.Config, log) -> LoadFileScheduling | None:
    if config.getvalue("dist") != "loadfile":
        return None
    # Units in the workers' collection order (see below), not by their number of tests.
    config.option.loadscopereorder = False
    return RayModulesTogether(config, log)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """RAY_MODULES first."""
    items.sort(key=lambda item: item.nodeid.split("::")[0] not in RAY_MODULES)


@pytest.fixture(autouse=True)
def no_store_from_an_earlier_test(monkeypatch):
    """mlflow.set_tracking_uri also exports MLFLOW_TRACKING_URI: a test must not inherit
    the store of one that ran before it in the same process."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


@pytest.fixture
def make_cfg():
    """Compose conf/ with overrides, as `python pipelines/train.py <overrides>` would."""

    def _compose(*overrides: str):
        with initialize_config_dir(str(CONF_DIR)):
            return compose("config", overrides=list(overrides))

    return _compose


# Samples of each kind a model may read: images as the digits are, sequences (steps,
# features) as a time series is, a table's rows, and texts of token ids (of VOCAB).
SAMPLE_SHAPES = {"image": (1, 8, 8), "sequence": (12, 3), "row": (64,), "tokens": (16,)}
VOCAB = 11


def vocab_size(kind: str) -> int | None:
    """The vocabulary size of samples of `kind`: None unless they are token ids."""
    return VOCAB if kind == "tokens" else None


def sample(kind: str, batch: int) -> "torch.Tensor":
    """A random batch of samples of `kind`: numbers, or token ids without [PAD] (id 0)."""
    import torch

    if kind == "tokens":
        return torch.randint(1, VOCAB, (batch, *SAMPLE_SHAPES[kind]))
    return torch.randn(batch, *SAMPLE_SHAPES[kind])


def model_cfg(name: str, **settings) -> dict:
    """conf/model/<name>.yaml as the model config a run holds, `settings` changed."""
    return {**yaml.safe_load((CONF_DIR / "model" / f"{name}.yaml").read_text()), **settings}


def reads(model: dict, kind: str) -> bool:
    """Whether `model` reads samples of `kind` (SAMPLE_SHAPES): built for them, it does
    not say that it expects other data."""
    from dlpipe.errors import ConfigError
    from dlpipe.models.registry import LANGUAGE_MODEL, build_model, own_task

    # A language model scores each token of the vocabulary.
    outputs = VOCAB if own_task(model) == LANGUAGE_MODEL else 2
    try:
        build_model(model, SAMPLE_SHAPES[kind], outputs, vocab_size(kind))
    except ConfigError as exc:
        if " expects " not in str(exc):
            raise
        return False
    return True


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
    """`cmd` run to its end in `cwd`, its output captured as text; a pipeline stage forked
    from a server that has imported what it imports (tests/forked_stages.py)."""
    if is_stage(cmd) and not kwargs:
        done = run_stage(cmd, cwd, git_env())
    else:
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


@pytest.fixture(scope="module")
def trained_project(tmp_path_factory) -> Path:
    """A project prepared and trained for one epoch, shared by the tests of one module."""
    project = make_project(tmp_path_factory.mktemp("trained") / "project")
    for script in ("prepare", "train"):
        run([sys.executable, f"pipelines/{script}.py", "trainer.max_epochs=1"], project)
    return project


def dlpipe_in(project: Path, monkeypatch, capsys):
    """`dlpipe ARGS` run in this process in `project`, as a fixture returns it: the exit
    code, stdout and stderr (a subprocess would only add start-up time)."""
    from dlpipe import cli

    monkeypatch.chdir(project)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)

    def _run(*args: str) -> tuple[int, str, str]:
        try:
            code = cli.main(list(args))
        except SystemExit as exc:
            code = exc.code
        out, err = capsys.readouterr()
        return code, out, err

    return _run


def stage(project: Path, name: str, *overrides: str) -> subprocess.CompletedProcess:
    """Run pipelines/<name>.py in `project`, whatever its exit code."""
    return run([sys.executable, f"pipelines/{name}.py", *overrides], project, check=False)


def assert_one_line_error(done: subprocess.CompletedProcess, *fragments: str) -> str:
    """The stage stopped with exit code 2 and one `error:` line holding every fragment."""
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2, done.stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    for fragment in fragments:
        assert fragment in lines[0]
    return lines[0]


def file_contents(folder: Path) -> dict[Path, bytes]:
    return {path: path.read_bytes() for path in folder.rglob("*") if path.is_file()}


@contextmanager
def restored(*folders: Path) -> Iterator[None]:
    """Put back every file of `folders` as it was, for the next test, once the block ends."""
    saved = {path: content for folder in folders for path, content in file_contents(folder).items()}
    try:
        yield
    finally:
        for folder in folders:
            for path in set(file_contents(folder)) - set(saved):
                path.unlink()
        for path, content in saved.items():
            path.write_bytes(content)


def prepared_project(folder: Path) -> Path:
    """A fresh project (see make_project) in `folder`, its default data prepared."""
    project = make_project(folder)
    run([sys.executable, "pipelines/prepare.py"], project)
    return project


def start_until(cmd: list[str], cwd: Path, marker: str, **popen) -> subprocess.Popen:
    """Start `cmd` and return once a line of its output contains `marker` (to interrupt it)."""
    process = subprocess.Popen(
        cmd,
        cwd=cwd,
        env=git_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        **popen,
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


class MlflowServer:
    """A real `mlflow server` on 127.0.0.1 (or `host`), its store (sqlite, or `backend`) and
    artifacts under `folder`, served through it (clients need no access to the folder).

    `stop()` kills it as a crash would, `start()` brings it back on the same port with the
    same store. It runs in a process group of its own, as `mlflow server` serves from a
    child process (uvicorn) that killing the parent alone would leave behind.
    """

    def __init__(self, folder: Path, backend: str | None = None, host: str = "127.0.0.1"):
        """`backend`: its store's URI (e.g. a PostgreSQL database); None: sqlite in `folder`.
        `host`: the address it listens on."""
        self.folder = folder
        self.backend = backend or f"sqlite:///{folder / 'server.db'}"
        self.host = host
        self.uri = f"http://{host}:{free_port()}"
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 90) -> None:
        cmd = [
            BIN_DIR / "mlflow",
            "server",
            "--host",
            self.host,
            "--port",
            self.uri.rsplit(":", 1)[1],
            "--backend-store-uri",
            self.backend,
            "--artifacts-destination",
            str(self.folder / "artifacts"),
            "--workers",
            "1",
        ]
        # Without its job runner (seven huey processes, for GenAI jobs no training uses).
        env = {**git_env(), "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
        self.process = subprocess.Popen(
            cmd,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while not self.answers():
            assert self.process.poll() is None, f"mlflow server exited {self.process.returncode}"
            assert time.monotonic() < deadline, f"mlflow server not up within {timeout} s"
            time.sleep(0.3)

    def answers(self) -> bool:
        try:
            urllib.request.urlopen(f"{self.uri}/health", timeout=2).close()
        except OSError:
            return False
        return True

    def stop(self) -> None:
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)


@pytest.fixture
def mlflow_server(tmp_path: Path) -> Iterator[MlflowServer]:
    server = MlflowServer(tmp_path / "mlflow-server")
    server.start()
    try:
        yield server
    finally:
        if server.process.poll() is None:
            server.stop()


@pytest.fixture
def read_only_folder() -> Iterator[Path]:
    """A folder this process cannot write into, as a user who does not own it sees it.

    Root writes anywhere, so as root (as CI runs) the test runs with the effective user
    `nobody` and gets root back afterwards. The folder sits in the system's temporary
    folder, which every user can pass through (pytest's own are private to their owner).
    What the test imports must be imported before it: `nobody` cannot read root's Python.
    """
    folder = Path(tempfile.mkdtemp(prefix="dlpipe-read-only-"))
    folder.chmod(0o555)
    as_root = os.geteuid() == 0
    if as_root:
        os.seteuid(NOBODY)
    try:
        yield folder
    finally:
        if as_root:
            os.seteuid(0)
        shutil.rmtree(folder)
