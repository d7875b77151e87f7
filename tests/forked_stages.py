"""Pipeline stages run by the tests as processes of their own, forked from a server that has
already imported what every stage imports.

A stage spends about 5 s of CPU importing torch, Lightning and MLflow before its first
line of work: over the suite's hundreds of stage runs, that was a third of its time.
Forked from the server, each stage still runs from its own command line, in its own
folder, with its own environment, output and exit code, as `python pipelines/<stage>.py`
would. What needs an interpreter of its own (a terminal, a signal, a process group, `dvc
repro`) starts one with subprocess, as before.
"""

import atexit
import multiprocessing
import os
import runpy
import subprocess
import sys
import tempfile
from pathlib import Path

# What the stages import at their start, and this module (the forked processes' code).
PRELOAD = [
    "torch",
    "lightning.pytorch",
    "mlflow",
    "hydra",
    "dlpipe.data.prepare",
    "dlpipe.training.train",
    "dlpipe.evaluation.evaluate",
    "tests.forked_stages",
]
_SERVER = multiprocessing.get_context("forkserver")
_SERVER.set_forkserver_preload(PRELOAD)


def is_stage(cmd: list) -> bool:
    """Whether `cmd` is `python pipelines/<stage>.py ...` with the tests' interpreter."""
    return (
        len(cmd) >= 2 and str(cmd[0]) == sys.executable and Path(cmd[1]).parent == Path("pipelines")
    )


def run_stage(cmd: list, cwd: Path, env: dict) -> subprocess.CompletedProcess:
    """`cmd` (see is_stage) run in `cwd` with `env` as subprocess.run would, its output
    captured as text."""
    with tempfile.TemporaryDirectory(prefix="dlpipe-stage-") as folder:
        out, err = Path(folder) / "stdout", Path(folder) / "stderr"
        out.touch()
        err.touch()
        args = ([str(part) for part in cmd], str(cwd), env, str(out), str(err))
        process = _SERVER.Process(target=_stage, args=args)
        process.start()
        process.join()
        return subprocess.CompletedProcess(
            cmd, process.exitcode, out.read_text("utf-8"), err.read_text("utf-8")
        )


def _stage(cmd: list[str], cwd: str, env: dict, out: str, err: str) -> None:
    """In the forked process: become `cmd` and run its script as __main__."""
    for fd, path in ((1, out), (2, err)):
        opened = os.open(path, os.O_WRONLY)
        os.dup2(opened, fd)
        os.close(opened)
    os.chdir(cwd)
    os.environ.clear()
    os.environ.update(env)
    script = Path(cwd, cmd[1])
    sys.argv = cmd[1:]
    sys.path[0] = str(script.parent)  # as `python <script>` sets it
    try:
        runpy.run_path(str(script), run_name="__main__")
    finally:
        # multiprocessing ends its processes with os._exit, which skips these.
        atexit._run_exitfuncs()
