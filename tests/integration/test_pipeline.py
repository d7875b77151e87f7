"""The default pipeline for real: `dvc repro`, `dvc exp run -S`, direct runs, read back from MLflow.

One project copy serves the module; the tests run in file order, each building on the last.
"""

import contextlib
import fcntl
import json
import os
import pty
import signal
import struct
import sys
import termios
from pathlib import Path

import pytest
import yaml
from mlflow import MlflowClient

from dlpipe.config.checks import flatten
from dlpipe.tracking import lineage, reproduce
from tests.conftest import git_env, make_project, run, start_until
from tests.stage_imports import stage_imports

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    return make_project(tmp_path_factory.mktemp("pipeline") / "project")


@pytest.fixture(scope="module")
def repro(project: Path) -> dict[str, str]:
    first = run(["dvc", "repro"], project)
    second = run(["dvc", "repro"], project)
    return {"first": first.stdout, "second": second.stdout}


def client_for(project: Path) -> MlflowClient:
    return MlflowClient(tracking_uri=f"sqlite:///{project / 'mlflow.db'}")


def all_runs(project: Path):
    client = client_for(project)
    experiment = client.get_experiment_by_name("dlpipe")
    return client.search_runs([experiment.experiment_id], order_by=["attributes.start_time ASC"])


def read_json(path: Path):
    return json.loads(path.read_text())


def test_repro_runs_every_stage_and_reaches_the_bar(project, repro):
    for name in ("prepare", "train", "evaluate"):
        assert f"Running stage '{name}'" in repro["first"]
    metrics = read_json(project / "reports" / "metrics.json")
    assert set(metrics) == {"test/loss", "test/acc", "test/f1_macro"}
    # One seed on 270 test digits: the same seed has given 0.967 to 0.989 on different CPUs
    # (their float rounding differs), so the bar leaves room for that spread.
    assert metrics["test/acc"] >= 0.96
    # Without a terminal, training reports one plain line per epoch, with that epoch's numbers.
    first_epoch = read_json(project / "models" / "history.json")[0]
    line = next(line for line in repro["first"].splitlines() if "epoch 1/40 " in line)
    for key in ("train/loss", "train/acc", "val/loss", "val/acc"):
        assert f"{key} {first_epoch[key]:.4f}" in line


def test_second_repro_does_no_work(project, repro):
    assert "Data and pipelines are up to date." in repro["second"]
    assert "Running stage" not in repro["second"]
    assert len(all_runs(project)) == 1


def test_a_change_to_a_module_reruns_every_stage_that_imports_it(project, repro):
    def stale() -> set[str]:
        return set(json.loads(run(["dvc", "status", "--json"], project).stdout))

    importers = {
        stage: stage_imports(project / "pipelines" / f"{stage}.py", project / "src")
        for stage in ("prepare", "train", "evaluate")
    }
    for module in ("errors.py", "tracking/registry.py"):
        code = project / "src/dlpipe" / module
        importing = {stage for stage, files in importers.items() if code in files}
        original = code.read_bytes()
        code.write_bytes(original + b"# a change\n")
        try:
            assert importing <= stale()
        finally:
            code.write_bytes(original)
        assert stale() == set()
    assert {stage for stage, files in importers.items() if code in files} == {"evaluate"}


def test_what_repro_wrote_leaves_the_tree_clean_for_lineage(project, repro, monkeypatch):
    # Every repro rewrites dvc.lock (models/ holds a new run id) and the committed reports.
    assert "dvc.lock" in run(["git", "status", "--porcelain"], project).stdout
    monkeypatch.chdir(project)
    (first,) = all_runs(project)
    assert lineage.git_state() == (first.data.tags["mlflow.source.git.commit"], False)
    assert reproduce.differences(first.data.tags) == []
    code = project / "src/dlpipe/models/cnn.py"
    original = code.read_bytes()
    code.write_bytes(original + b"# a change\n")
    try:
        assert lineage.git_state()[1] is True
        assert reproduce.differences(first.data.tags) == [
            "uncommitted changes to src/dlpipe/models/cnn.py: commit or stash them"
        ]
    finally:
        code.write_bytes(original)


def test_run_holds_config_curves_test_metrics_lineage_and_artifacts(project, repro):
    (run_record,) = all_runs(project)
    run_id = run_record.info.run_id
    assert run_record.info.status == "FINISHED"
    assert read_json(project / "models" / "run.json")["run_id"] == run_id

    params = yaml.safe_load((project / "params.yaml").read_text())
    assert params["trainer"]["checkpoint_monitor"] is None  # null: the task's own,
    logged = {key: str(value) for key, value in flatten(params).items()}
    # which the run records: a classifier keeps its best validation accuracy.
    logged |= {"trainer.checkpoint_monitor": "val/acc", "trainer.checkpoint_mode": "max"}
    # Ties in it are told apart by the task's own second metric.
    logged |= {"trainer.checkpoint_tiebreak": "val/loss", "trainer.checkpoint_tiebreak_mode": "min"}
    assert run_record.data.params == logged

    client = client_for(project)
    epochs = len(read_json(project / "models" / "history.json"))
    for key in ("train/loss", "train/acc", "val/loss", "val/acc"):
        assert [m.step for m in client.get_metric_history(run_id, key)] == list(range(epochs))
    metrics = read_json(project / "reports" / "metrics.json")
    assert run_record.data.metrics["test/acc"] == pytest.approx(metrics["test/acc"])

    tags = run_record.data.tags
    head = run(["git", "rev-parse", "HEAD"], project).stdout.strip()
    assert tags["mlflow.source.git.commit"] == head
    assert tags["dlpipe.git_dirty"] == "false"  # a clean clone, nothing edited
    assert tags["dlpipe.data_hash"] == read_json(project / "data/prepared/meta.json")["hash"]
    assert len(tags["dlpipe.config_hash"]) == 64
    assert "pipelines/train.py" in tags["dlpipe.command"]
    assert tags["dlpipe.version"] == "0.1.0"

    artifacts = {a.path for a in client.list_artifacts(run_id)}
    artifacts |= {
        a.path for folder in ("checkpoints", "plots") for a in client.list_artifacts(run_id, folder)
    }
    assert {
        "config.yaml",
        "checkpoints/best.ckpt",
        "plots/confusion.png",
        "plots/learning_curves.png",
    } <= artifacts


def test_exp_run_recomposes_params_and_keeps_prepare(project, repro):
    done = run(["dvc", "exp", "run", "-S", "model=mlp", "-S", "trainer.max_epochs=3"], project)
    assert "Stage 'prepare' didn't change, skipping" in done.stdout
    assert yaml.safe_load((project / "params.yaml").read_text())["model"]["name"] == "mlp"

    shown = run(["dvc", "exp", "show", "--json"], project).stdout
    experiments = [exp for commit in json.loads(shown) for exp in (commit.get("experiments") or [])]
    (latest,) = [
        exp
        for exp in experiments
        if exp["revs"][0]["data"]["params"]["params.yaml"]["data"]["model"]["name"] == "mlp"
    ]
    data = latest["revs"][0]["data"]
    assert "test/acc" in data["metrics"]["reports/metrics.json"]["data"]

    diff = run(["dvc", "metrics", "diff", "--json"], project).stdout
    assert "test/acc" in json.loads(diff)["reports/metrics.json"]
    run(["dvc", "plots", "show", "--out", "plots-html"], project)
    page = (project / "plots-html" / "index.html").read_text()
    curves = (project / "reports/plots/learning_curves.csv").read_text().splitlines()
    first_val_loss = curves[1].split(",")[curves[0].split(",").index("val/loss")]
    assert f'"val/loss": "{first_val_loss}"' in page
    assert (
        page.count('"predicted": ')
        >= read_json(project / "data/prepared/meta.json")["sizes"]["test"]
    )

    runs = all_runs(project)
    assert [r.data.params["model.name"] for r in runs] == ["cnn", "mlp"]
    assert all(r.info.status == "FINISHED" for r in runs)


def test_direct_run_takes_any_override(project, repro):
    run(
        [
            sys.executable,
            "pipelines/train.py",
            "model=cnn",
            "optim.lr=3e-3",
            "trainer.max_epochs=2",
        ],
        project,
    )
    latest = all_runs(project)[-1]
    assert latest.data.params["optim.lr"] == "0.003"
    assert latest.data.params["trainer.max_epochs"] == "2"
    client = client_for(project)
    assert len(client.get_metric_history(latest.info.run_id, "val/acc")) == 2


def test_terminal_gets_a_progress_bar_instead_of_lines(project, repro):
    pid, terminal = pty.fork()
    if pid == 0:  # the child: a training whose output is a terminal, 50 rows by 200 columns
        fcntl.ioctl(pty.STDOUT_FILENO, termios.TIOCSWINSZ, struct.pack("4H", 50, 200, 0, 0))
        os.chdir(project)
        os.execve(
            sys.executable,
            [sys.executable, "pipelines/train.py", "trainer.max_epochs=1"],
            git_env(),
        )
    output = b""
    with contextlib.suppress(OSError):  # reading a closed terminal ends with EIO
        while chunk := os.read(terminal, 4096):
            output += chunk
    _, status = os.waitpid(pid, 0)
    text = output.decode(errors="replace")
    assert os.waitstatus_to_exitcode(status) == 0, text
    # One bar per epoch, numbered as the plain lines are, ending with the epoch's metrics;
    # no plain lines besides it.
    assert "epoch 1/1: 100%" in text and "val/acc=" in text and "train/loss=" in text
    assert "v_num" not in text and "epoch 1/1 train/" not in text


def test_ctrl_c_during_training_leaves_the_run_killed(project, repro):
    command = [
        sys.executable,
        "pipelines/train.py",
        "trainer.max_epochs=200",
        "trainer.early_stopping.patience=200",
    ]
    process = start_until(command, project, "epoch 2/200")
    process.send_signal(signal.SIGINT)
    process.communicate(timeout=60)
    assert process.returncode != 0
    assert all_runs(project)[-1].info.status == "KILLED"
    # The interrupted run's checkpoints must not pass for the previous run's model.
    done = run([sys.executable, "pipelines/evaluate.py"], project, check=False)
    assert done.returncode == 2 and "models/run.json is missing" in done.stderr
