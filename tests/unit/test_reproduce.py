"""Reproducing a run: its recorded config made trainable, the working tree checked against
its record, and the metrics of the two trainings compared (see tests/integration for the
whole command)."""

import json
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest
from omegaconf import OmegaConf

from dlpipe.config import checks as config
from dlpipe.config import secrets
from dlpipe.errors import ConfigError, DlpipeError, LineageError
from dlpipe.tracking import reproduce as reproduction
from dlpipe.tracking.reproduce import (
    MetricComparison,
    Record,
    compare,
    differences,
    read_record,
    reproduction_config,
    table,
)
from tests.conftest import git_env

STORE = "sqlite:////store/mlflow.db"


class LoggedRun:
    """The MLflow calls `read_record` makes, on one run holding `config_yaml`."""

    def __init__(self, config_yaml: str, status: str = "FINISHED"):
        self.config_yaml, self.status = config_yaml, status

    def get_run(self, run_id: str):
        return SimpleNamespace(
            info=SimpleNamespace(status=self.status), data=SimpleNamespace(tags={"t": "1"})
        )

    def download_artifacts(self, run_id: str, path: str, folder: str) -> str:
        (Path(folder) / path).write_text(self.config_yaml)
        return str(Path(folder) / path)


@pytest.fixture
def logged(make_cfg):
    """A run's config.yaml as a training logs it (secrets masked), for `overrides`."""

    def _logged(*overrides: str) -> str:
        return OmegaConf.to_yaml(secrets.mask(config.to_dict(make_cfg(*overrides))))

    return _logged


def test_the_recorded_config_trains_as_a_new_run_in_the_store_read(logged):
    record = read_record(
        LoggedRun(logged("model=mlp", "tracking.uri=https://me:pw@host", "optim.lr=3e-4")), "r1"
    )
    assert record.config["tracking"]["uri"] == "https://me:***@host"
    assert record.tags == {"t": "1"}
    cfg = reproduction_config(record, STORE)
    assert cfg.tracking.uri == STORE
    assert cfg.resume is False
    assert (cfg.model.name, cfg.optim.lr) == ("mlp", 3e-4)


def test_a_masked_setting_cannot_be_reproduced(logged):
    # A setting named like a secret is logged masked.
    masked = logged("+data.api_key=k3y-of-the-data-source")
    with pytest.raises(ConfigError, match=r"r1 logged data\.api_key masked as \*\*\*: a masked"):
        read_record(LoggedRun(masked), "r1")


def test_only_a_finished_training_is_reproduced(logged):
    with pytest.raises(DlpipeError, match="run r1 is KILLED: only a finished training"):
        read_record(LoggedRun(logged(), status="KILLED"), "r1")


def test_a_search_trial_trains_without_its_finished_trial(logged):
    record = read_record(LoggedRun(logged("search=digits", "search.trial=3")), "r1")
    assert record.config["search"]["trial"] == 3
    assert reproduction_config(record, STORE).search.trial is None


def test_a_config_this_code_does_not_take_is_named(logged):
    record = read_record(LoggedRun(logged()), "r1")
    record.config["model"]["width_factor"] = 2
    with pytest.raises(ConfigError, match=r"r1's config does not fit this code \(model\.width"):
        reproduction_config(record, STORE)


def git(folder: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", *args], cwd=folder, env=git_env(), capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


@pytest.fixture
def tree(tmp_path: Path, monkeypatch) -> dict[str, str]:
    """A clean git work tree holding prepared data, as the cwd; the tags of a run trained there."""
    (tmp_path / "train.py").write_text("print('train')\n")
    (tmp_path / "notes.md").write_text("notes\n")
    git(tmp_path, "init", "--quiet")
    git(tmp_path, "add", "--all")
    git(tmp_path, "commit", "--quiet", "-m", "code")
    (tmp_path / "data/prepared").mkdir(parents=True)
    (tmp_path / "data/prepared/meta.json").write_text(json.dumps({"hash": "d" * 8}))
    monkeypatch.chdir(tmp_path)
    commit = git(tmp_path, "rev-parse", "HEAD")
    return {
        "mlflow.source.git.commit": commit,
        "dlpipe.git_dirty": "false",
        "dlpipe.data_hash": "d" * 8,
    }


def test_the_run_s_commit_clean_with_its_data_has_no_difference(tree):
    assert differences(tree) == []


def test_uncommitted_changes_are_named_file_by_file(tree):
    Path("train.py").write_text("print('changed')\n")
    Path("notes.md").unlink()
    Path("untracked.txt").write_text("not part of the code\n")
    (found,) = differences(tree)
    assert found == "uncommitted changes to notes.md, train.py: commit or stash them"


def test_what_the_pipeline_wrote_since_is_no_difference(tree):
    Path("dvc.yaml").write_text("stages:\n  evaluate:\n    cmd: x\n    metrics: [metrics.json]\n")
    Path("dvc.lock").write_text("schema: '2.0'\n")
    Path("metrics.json").write_text("{}\n")
    git(Path.cwd(), "add", "--all")
    git(Path.cwd(), "commit", "--quiet", "-m", "pipeline")
    tags = {**tree, "mlflow.source.git.commit": git(Path.cwd(), "rev-parse", "HEAD")}
    # As after `dvc repro`: a new lock and new metrics.
    Path("dvc.lock").write_text("schema: '2.0'\nstages: {}\n")
    Path("metrics.json").write_text('{"test/acc": 0.9}\n')
    assert differences(tags) == []
    Path("train.py").write_text("print('changed')\n")
    assert differences(tags) == ["uncommitted changes to train.py: commit or stash them"]


def test_another_commit_names_both(tree):
    Path("notes.md").write_text("more notes\n")
    git(Path.cwd(), "commit", "--quiet", "-am", "more")
    head, recorded = git(Path.cwd(), "rev-parse", "HEAD"), tree["mlflow.source.git.commit"]
    assert differences(tree) == [
        f"commit {head} is checked out; the run was trained at {recorded}: "
        f"`git checkout {recorded}`"
    ]


def test_a_run_trained_on_a_dirty_tree_cannot_be_checked(tree):
    (found,) = differences({**tree, "dlpipe.git_dirty": "true"})
    assert found.startswith("the run was trained with uncommitted changes on top of ")
    (found,) = differences({**tree, "mlflow.source.git.commit": None})
    assert found.startswith("the run records no git commit")


def test_other_data_names_both_hashes(tree):
    Path("data/prepared/meta.json").write_text(json.dumps({"hash": "e" * 8}))
    (found,) = differences(tree)
    assert found.startswith(f"data/prepared holds data of hash {'e' * 8}; the run was trained on ")
    assert "`dvc checkout data/prepared` at its commit" in found
    Path("data/prepared/meta.json").unlink()
    (found,) = differences(tree)
    assert found.startswith("data/prepared/meta.json is missing or unreadable: prepare the run's")


class FakeStore:
    """The two MLflow calls `compare` makes, over {run: {metric: [(step, value)]}}."""

    def __init__(self, runs: dict[str, dict[str, list[tuple[int, float]]]]):
        self.runs = runs

    def get_run(self, run_id: str):
        metrics = {name: values[-1][1] for name, values in self.runs[run_id].items()}
        return SimpleNamespace(data=SimpleNamespace(metrics=metrics))

    def get_metric_history(self, run_id: str, name: str):
        return [SimpleNamespace(step=s, value=v) for s, v in self.runs[run_id][name]]


def test_training_metrics_compared_epoch_by_epoch():
    training = {"train/loss": [(0, 0.5), (1, 0.25)], "best/val/acc": [(0, 0.9)]}
    store = FakeStore(
        {
            "a": {**training, "val/acc": [(0, 0.8), (1, 0.9)], "test/acc": [(0, 0.9)]},
            "b": {**training, "val/acc": [(0, 0.8), (1, 0.9000001)]},
            "c": {**training, "val/acc": [(0, 0.8)]},
        }
    )
    # Evaluate's test/ metrics are not the training's: a reproduction has none.
    compared = compare(store, "a", "b")
    assert [c.name for c in compared] == ["best/val/acc", "train/loss", "val/acc"]
    assert [c.matches for c in compared] == [True, True, False]
    assert compared[2].first_difference() == 1
    (shorter,) = [c for c in compare(store, "a", "c") if not c.matches]
    assert shorter.first_difference() == 1


def test_table_shows_every_digit_and_where_values_part():
    rows = [
        MetricComparison("val/loss", {0: 0.5, 1: 0.1 + 0.2}, {0: 0.5, 1: 0.3}),
        MetricComparison("train/loss", {0: 0.5}, {0: 0.5, 1: 0.4}),
        MetricComparison("best/val/loss", {0: 0.25}, {0: 0.25}),
    ]
    assert table(rows).splitlines() == [
        "metric         epochs  original             reproduced  same",
        "val/loss       2       0.30000000000000004  0.3         no, from epoch 2",
        "train/loss     1 vs 2  0.5                  0.4         no, from epoch 2",
        "best/val/loss  1       0.25                 0.25        yes",
    ]


@pytest.fixture
def retrained(monkeypatch):
    """`reproduce` with the record, working tree and training replaced: run "a" is read
    with the `found` differences, and retrained as run "b" of `store`."""

    def _retrained(store: FakeStore, found: list[str]):
        store.tracking_uri = STORE
        monkeypatch.setattr(reproduction, "read_record", lambda client, run: Record(run, {}, {}))
        monkeypatch.setattr(reproduction, "differences", lambda tags: found)
        monkeypatch.setattr(reproduction, "reproduction_config", lambda record, uri: None)
        monkeypatch.setattr(reproduction, "rerun", lambda client, cfg, original: "b")
        monkeypatch.setattr(reproduction, "_show_progress", lambda: None)
        return lambda force=False: reproduction.reproduce(store, "a", force)

    return _retrained


def test_any_metric_that_differs_fails_the_reproduction(retrained, capsys):
    store = FakeStore({"a": {"val/acc": [(0, 0.8)]}, "b": {"val/acc": [(0, 0.81)]}})
    assert retrained(store, [])() is False
    assert capsys.readouterr().out.splitlines()[-1] == "run b differs from run a in val/acc"


def test_differences_stop_it_unless_forced(retrained, capsys):
    same = FakeStore({"a": {"val/acc": [(0, 0.8)]}, "b": {"val/acc": [(0, 0.8)]}})
    reproduce = retrained(same, ["uncommitted changes to a.py: commit or stash them"])
    with pytest.raises(LineageError, match=r"(?s)not what run a was trained with.*\n  uncommitted"):
        reproduce()
    assert reproduce(force=True) is True
    printed = capsys.readouterr()
    assert printed.err.startswith("warning: uncommitted changes to a.py: commit or stash them\n")
    assert printed.out.splitlines()[-1] == (
        "run b reproduces run a: every metric equal at every epoch"
    )
