"""A throw-away copy of the project, for benchmarks that run the pipelines as a user does."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def copy_project(folder: Path) -> Path:
    """Copy the files git would commit (tracked, and new ones not ignored) into `folder`."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\n")
    for name in filter(None, listed):
        if (ROOT / name).is_file():
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, folder / name)
    return folder


def stage(project: Path, script: str, *overrides: str, env: dict | None = None) -> None:
    """Run `pipelines/<script>` with `overrides` in `project` (and `env` added to the
    environment); its output only on failure."""
    command = [sys.executable, f"pipelines/{script}", *overrides]
    env = {**os.environ, "PYTHONWARNINGS": "ignore", **(env or {})}
    done = subprocess.run(command, cwd=project, env=env, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stdout}\n{done.stderr}")
