"""Where a run came from: git state, config and data hashes, command line, dlpipe version."""

import shlex
import subprocess
import sys

from dlpipe import __version__


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(["git", *args], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def git_state() -> tuple[str | None, bool]:
    """The checked-out commit (None outside a git work tree) and whether tracked files differ."""
    commit = _git("rev-parse", "HEAD")
    changes = _git("status", "--porcelain", "--untracked-files=no")
    return commit, bool(changes)


def lineage_tags(config_hash: str, data_hash: str) -> dict[str, str]:
    commit, dirty = git_state()
    tags = {
        "dlpipe.config_hash": config_hash,
        "dlpipe.data_hash": data_hash,
        "dlpipe.command": shlex.join([sys.executable.rsplit("/", 1)[-1], *sys.argv]),
        "dlpipe.version": __version__,
        "mlflow.source.name": sys.argv[0],
        "mlflow.source.type": "LOCAL",
    }
    if commit:
        tags["mlflow.source.git.commit"] = commit
        tags["dlpipe.git_dirty"] = str(dirty).lower()
    return tags
