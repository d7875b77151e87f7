"""Lineage: the commit a run came from, and whether tracked files had changed."""

from pathlib import Path

import pytest

from dlpipe.lineage import git_state, lineage_tags
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


def test_changed_tracked_file_is_dirty_untracked_file_is_not(repo: Path):
    (repo / "notes.txt").write_text("scratch\n")
    assert git_state()[1] is False
    (repo / "train.py").write_text("print('v2')\n")
    assert git_state()[1] is True


def test_outside_git_there_is_no_commit_tag(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    tags = lineage_tags("c" * 64, "d" * 64)
    assert "mlflow.source.git.commit" not in tags and tags["dlpipe.data_hash"] == "d" * 64
