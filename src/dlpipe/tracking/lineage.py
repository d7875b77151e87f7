"""Where a run came from: git state, config and data hashes, command line, dlpipe version."""

import posixpath
import shlex
import subprocess
import sys
from pathlib import Path

import yaml

from dlpipe import __version__
from dlpipe.config import secrets

# The pipeline's definition and the record `dvc repro` keeps of it, beside each other.
PIPELINE_FILE = Path("dvc.yaml")
LOCK_FILE = "dvc.lock"


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(["git", *args], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def git_state() -> tuple[str | None, bool]:
    """The checked-out commit (None outside a git work tree) and whether tracked source or
    config files differ from it (see `changed_files`)."""
    return _git("rev-parse", "HEAD"), bool(changed_files())


def changed_files() -> list[str]:
    """Tracked files that differ from the checked-out commit, staged or not, as paths from
    the repository's root; none outside a git work tree.

    What the pipeline writes does not count: every `dvc repro` rewrites dvc.lock and the
    committed reports (a new run id, new numbers), which says nothing about the code or
    config a run trained with.
    """
    listed = _git("diff", "--name-only", "-z", "HEAD", "--")
    if not listed:
        return []
    outputs = pipeline_outputs()
    return [
        path
        for path in listed.split("\0")
        if path and not any(path == out or path.startswith(f"{out}/") for out in outputs)
    ]


def pipeline_outputs(pipeline: Path = PIPELINE_FILE) -> set[str]:
    """What `dvc repro` writes, as dvc.yaml (in the working directory) declares it: its
    dvc.lock and each stage's outs, metrics and plots, as paths from the repository's root.
    None when dvc.yaml is missing or unreadable: then every change counts."""
    try:
        stages = yaml.safe_load(pipeline.read_text())["stages"]
        declared = [
            posixpath.join(stage.get("wdir", "."), _path_of(out))
            for stage in stages.values()
            for kind in ("outs", "metrics", "plots")
            for out in stage.get(kind) or []
        ]
    except (OSError, yaml.YAMLError, TypeError, KeyError, AttributeError):
        return set()
    prefix = _git("rev-parse", "--show-prefix") or ""
    return {posixpath.normpath(prefix + path) for path in [LOCK_FILE, *declared]}


def _path_of(out: str | dict) -> str:
    """An output's path: the entry itself, or the key of an entry with options."""
    return out if isinstance(out, str) else next(iter(out))


def lineage_tags(config_hash: str, data_hash: str) -> dict[str, str]:
    commit, dirty = git_state()
    tags = {
        "dlpipe.config_hash": config_hash,
        "dlpipe.data_hash": data_hash,
        "dlpipe.command": command_line(),
        "dlpipe.version": __version__,
        "mlflow.source.name": secrets.mask_text(sys.argv[0]),
        "mlflow.source.type": "LOCAL",
    }
    node = ray_node()
    if node:
        tags["ray.node"] = node
    if commit:
        tags["mlflow.source.git.commit"] = commit
        tags["dlpipe.git_dirty"] = str(dirty).lower()
    return tags


def ray_node() -> str | None:
    """In a job that a Ray launcher sent to a node of a cluster: that node's address, as
    the cluster knows it (which host of a sweep ran the job)."""
    ray = sys.modules.get("ray")  # never imported here only to ask
    if ray is None or not ray.is_initialized():
        return None
    if ray.get_runtime_context().worker.mode != ray.WORKER_MODE:
        return None
    return ray.util.get_node_ip_address()


def command_line() -> str:
    """This process's command line, secrets masked (`tracking.uri=http://alice:***@host`,
    `+db.password=***`): runs and sweeps keep it as their `dlpipe.command` tag."""
    return shlex.join([Path(sys.executable).name, *map(secrets.mask_override, sys.argv)])
