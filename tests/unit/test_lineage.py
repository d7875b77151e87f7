"""Lineage: the commit a run came from, and whether tracked files had changed."""

import sys
from pathlib import Path

import pytest

from dlpipe.tracking.lineage import changed_files, git_state, lineage_tags
from tests.conftest import run


@pytest.fixture
def repo(tmp_path: Path, monkeypatch) -> Path:
    (tmp_path / "train.py").write_text("print('v1')\n")
    run(["git", "init", "--quiet"], tmp_path)
    run(["git", "add", "train.py"], tmp_path)
    run(["git", "commit", "--quiet", "-m", "v1"], tmp_path)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_clean_tree_gives_its_commit(repo: Path):
    head = run(["git", "rev-parse", "HEAD"], repo).stdout.strip()
    assert git_state() == (head, False)
    tags = lineage_tags("c" * 64, "d" * 64)
    assert tags["mlflow.source.git.commit"] == head and tags["dlpipe.git_dirty"] == "false"
    assert "ray.node" not in tags  # only a job a Ray launcher ran says its node


def test_changed_tracked_file_is_dirty_untracked_file_is_not(repo: Path):
    (repo / "notes.txt").write_text("scratch\n")
    assert git_state()[1] is False
    (repo / "train.py").write_text("print('v2')\n")
    assert git_state()[1] is True


PIPELINE = """
stages:
  train:
    cmd: python train.py
    deps: [train.py]
    outs:
      - models:
          persist: true
  evaluate:
    cmd: python evaluate.py
    metrics:
      - reports/metrics.json:
          cache: false
    outs:
      - reports/plots:
          cache: false
"""


@pytest.fixture
def pipeline(repo: Path) -> Path:
    """`repo` as a DVC project whose committed outputs dvc.yaml declares."""
    (repo / "dvc.yaml").write_text(PIPELINE)
    for name in ("dvc.lock", "reports/metrics.json", "reports/plots/loss.csv", "reports.md"):
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text("v1\n")
    run(["git", "add", "--all"], repo)
    run(["git", "commit", "--quiet", "-m", "pipeline"], repo)
    return repo


def test_what_the_pipeline_writes_leaves_the_tree_clean(pipeline: Path):
    # What every `dvc repro` rewrites (a new run id, new numbers) says nothing of the code.
    for name in ("dvc.lock", "reports/metrics.json", "reports/plots/loss.csv"):
        (pipeline / name).write_text("v2\n")
    assert git_state()[1] is False and changed_files() == []
    # A file beside an output, and the pipeline's own definition, are sources.
    (pipeline / "reports.md").write_text("v2\n")
    (pipeline / "dvc.yaml").write_text(PIPELINE.replace("train.py]", "train.py, more.py]"))
    assert git_state()[1] is True and changed_files() == ["dvc.yaml", "reports.md"]


def test_without_a_readable_pipeline_every_change_counts(pipeline: Path):
    (pipeline / "dvc.lock").write_text("v2\n")
    (pipeline / "dvc.yaml").write_text("stages: [unclosed\n")
    assert changed_files() == ["dvc.lock", "dvc.yaml"]


def test_outside_git_there_is_no_commit_tag(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    tags = lineage_tags("c" * 64, "d" * 64)
    assert "mlflow.source.git.commit" not in tags and tags["dlpipe.data_hash"] == "d" * 64


def test_the_command_line_is_recorded_with_its_secrets_masked(repo: Path, monkeypatch):
    monkeypatch.setenv("TEAM_API_KEY", "env-held-value")
    argv = [
        "pipelines/train.py",
        "tracking.uri=http://alice:hunter2secret@127.0.0.1:5000",
        "+tracking.token=token-value",
        "data.path=/data/env-held-value.csv",
    ]
    monkeypatch.setattr(sys, "argv", argv)
    tags = lineage_tags("c" * 64, "d" * 64)
    recorded = " ".join(tags.values())
    assert not [s for s in ("hunter2secret", "token-value", "env-held-value") if s in recorded]
    assert "tracking.uri=http://alice:***@127.0.0.1:5000" in tags["dlpipe.command"]
    assert tags["mlflow.source.name"] == "pipelines/train.py"
