"""`dlpipe runs`, `compare` and `ui` against a store made by real trainings: the sqlite
store itself, and the same store behind a real `mlflow server`."""

import json
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from mlflow import MlflowClient

from tests.conftest import (
    BIN_DIR,
    MlflowServer,
    assert_one_line_error,
    git_env,
    make_project,
    run,
)

pytestmark = pytest.mark.slow

LEARNING_RATES = ("0.001", "0.003")


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """Two one-epoch trainings that differ in optim.lr, the second one evaluated, and a
    sweep parent run with both as its children (tagged as a sweep tags them)."""
    project = make_project(tmp_path_factory.mktemp("runs") / "project")
    run([sys.executable, "pipelines/prepare.py"], project)
    for lr in LEARNING_RATES:
        run(
            [sys.executable, "pipelines/train.py", "trainer.max_epochs=2", f"optim.lr={lr}"],
            project,
        )
    run([sys.executable, "pipelines/evaluate.py"], project)
    client = MlflowClient(tracking_uri=f"sqlite:///{project / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("dlpipe").experiment_id
    found = client.search_runs([experiment], order_by=["attributes.start_time ASC"])
    ids = {run.data.params["optim.lr"]: run.info.run_id for run in found}
    parent = client.create_run(experiment, tags={"mlflow.runName": "sweep 12-00-00"})
    client.set_terminated(parent.info.run_id)
    for run_id in ids.values():
        client.set_tag(run_id, "mlflow.parentRunId", parent.info.run_id)
    return project, {**ids, "parent": parent.info.run_id}


def dlpipe(project: Path, *args: str) -> subprocess.CompletedProcess:
    return run([str(BIN_DIR / "dlpipe"), *args], project, check=False)


def listed(project: Path, *args: str) -> list[dict[str, str]]:
    """The rows of `dlpipe runs`' table, each as {column title: cell}."""
    done = dlpipe(project, "runs", *args)
    assert done.returncode == 0, done.stderr
    header, *lines = done.stdout.splitlines()
    starts = [found.start() for found in re.finditer(r"\S+", header)]
    spans = list(zip(starts, [*starts[1:], None], strict=True))
    titles = [header[start:end].strip() for start, end in spans]
    return [
        {t: line[s:e].strip() for t, (s, e) in zip(titles, spans, strict=True)} for line in lines
    ]


def test_table_lists_the_runs_with_status_and_key_values(trained):
    project, ids = trained
    rows = {row["run"]: row for row in listed(project)}
    assert set(rows) == set(ids.values())
    first, second = rows[ids["0.001"]], rows[ids["0.003"]]
    assert [first["status"], second["status"]] == ["FINISHED", "FINISHED"]
    assert [first["optim.lr"], second["optim.lr"]] == list(LEARNING_RATES)
    assert first["model.name"] == second["model.name"] == "cnn"
    assert first["data.name"] == "digits" and first["duration"].endswith("s")
    assert re.fullmatch(r"0\.\d+", second["test/acc"]) and first["test/acc"] == "-"
    assert re.fullmatch(r"0\.\d+", first["best/val/acc"])
    assert rows[ids["parent"]]["name"] == "sweep 12-00-00"
    latest_first = [row["run"] for row in listed(project)]
    assert latest_first == [ids["parent"], ids["0.003"], ids["0.001"]]


def test_filter_on_a_metric_and_on_a_param(trained):
    project, ids = trained
    evaluated = listed(project, "--filter", "metrics.test/acc > 0")
    assert [row["run"] for row in evaluated] == [ids["0.003"]]
    slow = listed(
        project, "--filter", "params.optim.lr = '0.001' and attributes.status = 'FINISHED'"
    )
    assert [row["run"] for row in slow] == [ids["0.001"]]
    done = dlpipe(project, "runs", "--filter", "metrics.test/acc > 2")
    assert done.stdout == "no runs match in experiment 'dlpipe' of " + (
        f"sqlite:///{project.resolve() / 'mlflow.db'}\n"
    )


def test_sort_either_way_and_pick_columns(trained):
    project, ids = trained
    rows = listed(project, "--sort", "params.optim.lr DESC", "--columns", "metrics.val/loss")
    assert [row["run"] for row in rows] == [ids["0.003"], ids["0.001"], ids["parent"]]
    assert list(rows[0])[5:] == ["val/loss", "note"] and rows[2]["val/loss"] == "-"
    ascending = listed(project, "--sort", "metrics.best/val/acc", "--limit", "2")
    scores = [float(row["best/val/acc"]) for row in ascending]
    assert len(scores) == 2 and scores == sorted(scores)


def test_json_holds_the_same_runs_with_every_field(trained):
    project, ids = trained
    done = dlpipe(project, "runs", "--json")
    assert done.returncode == 0, done.stderr
    runs = json.loads(done.stdout)
    assert [r["run_id"] for r in runs] == [row["run"] for row in listed(project)]
    by_id = {r["run_id"]: r for r in runs}
    assert by_id[ids["0.001"]]["params"]["optim.lr"] == "0.001"
    assert by_id[ids["0.003"]]["tags"]["mlflow.parentRunId"] == ids["parent"]
    assert {"val/loss", "train/loss", "test/acc"} <= set(by_id[ids["0.003"]]["metrics"])
    assert by_id[ids["0.003"]]["end_time"] > by_id[ids["0.003"]]["start_time"]


def test_parent_lists_a_sweeps_children(trained):
    project, ids = trained
    children = listed(project, "--parent", ids["parent"])
    assert {row["run"] for row in children} == {ids["0.001"], ids["0.003"]}
    none = dlpipe(project, "runs", "--parent", ids["0.001"])
    assert none.stdout.startswith("no runs match")


def test_compare_shows_differing_params_metrics_and_curves(trained, tmp_path):
    project, ids = trained
    image = tmp_path / "curves" / "compare.png"
    done = dlpipe(project, "compare", ids["0.001"], ids["0.003"], "--plot", str(image))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split() == ["run", ids["0.001"], ids["0.003"]]
    assert re.match(r"params: \d+ differ, \d+ the same", lines[5])
    differing = {line.split()[0]: line.split()[1:] for line in lines if line.startswith("  ")}
    assert differing["optim.lr"] == list(LEARNING_RATES)
    assert "model.name" not in differing  # the same in both
    assert differing["test/acc"][0] == "-" and float(differing["test/acc"][1]) > 0
    assert all(len(differing[key]) == 2 for key in ("val/loss", "train/loss", "best/val/acc"))
    assert lines[-1].startswith("learning curves (val/acc, val/loss,")
    assert image.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_same_answers_from_a_tracking_server(trained, tmp_path):
    """The project's store served by `mlflow server`: read through the REST API."""
    project, ids = trained
    server = MlflowServer(tmp_path / "server")
    server.folder.mkdir()
    shutil.copy(project / "mlflow.db", server.folder / "server.db")
    server.start()
    try:
        at_server = f"tracking.uri={server.uri}"
        for args in (
            [],
            ["--filter", "metrics.test/acc > 0", "--sort", "params.optim.lr"],
            ["--filter", "params.model.name = 'cnn'", "--sort", "metrics.best/val/acc DESC"],
            ["--parent", ids["parent"], "--columns", "params.optim.lr,tags.dlpipe.version"],
            ["--sort", "metrics.test/accuracy"],
        ):
            local, remote = (
                dlpipe(project, "runs", *args),
                dlpipe(project, "runs", *args, at_server),
            )
            assert (remote.returncode, remote.stdout) == (local.returncode, local.stdout)
            assert remote.stderr == local.stderr
        local, remote = (
            json.loads(dlpipe(project, "runs", "--json", *extra).stdout)
            for extra in ([], [at_server])
        )
        assert remote == local
        pair = (ids["0.001"], ids["0.003"])
        assert dlpipe(project, "compare", *pair, at_server).stdout == (
            dlpipe(project, "compare", *pair).stdout
        )
        unknown = dlpipe(project, "compare", ids["0.001"], "0" * 32, at_server)
        assert_one_line_error(unknown, f"no run {'0' * 32} in {server.uri}")
    finally:
        server.stop()


def test_ui_serves_the_store_until_interrupted(trained):
    project, _ = trained
    ui = subprocess.Popen(
        [str(BIN_DIR / "dlpipe"), "ui"],
        cwd=project,
        env=git_env(),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line, charts = ui.stdout.readline(), ui.stdout.readline()
        url = re.search(r"http://127\.0\.0\.1:\d+", line).group()
        # The experiment's training runs, not MLflow's GenAI home page.
        client = MlflowClient(tracking_uri=f"sqlite:///{project / 'mlflow.db'}")
        experiment = client.get_experiment_by_name("dlpipe").experiment_id
        view = f"{url}/#/experiments/{experiment}/runs?workflowType=machine_learning"
        assert line.startswith(f"MLflow UI on sqlite:///{project.resolve() / 'mlflow.db'}: {view}")
        assert charts.startswith(f"their charts: {view}") and "compareRunsMode=CHART" in charts
        assert answers(url, within=90)
        ui.send_signal(signal.SIGINT)  # Ctrl-C
        assert ui.wait(timeout=30) == 0
        assert not answers(url, within=0)  # its server went with it
    finally:
        if ui.poll() is None:
            ui.kill()


def answers(url: str, within: float) -> bool:
    deadline = time.monotonic() + within
    while True:
        try:
            urllib.request.urlopen(f"{url}/health", timeout=2).close()
            return True
        except OSError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.3)


@pytest.mark.parametrize(
    "args,fragment",
    [
        (("compare", "{a}", "0" * 32), f"no run {'0' * 32} in sqlite:///"),
        (("compare", "{a}"), "compare takes two runs or more"),
        (("runs", "--parent", "nope"), "no run nope in sqlite:///"),
        (("runs", "--filter", "metrics.test/acc ~ 1"), "bad filter at 'metrics.test/acc ~ 1'"),
        (("runs", "--filter", "params.optim.lr = 0.001"), "params.optim.lr compares with a quoted"),
        (("runs", "--sort", "metrics.test/accuracy"), "cannot sort by metrics.test/accuracy"),
        (("runs", "--columns", "params.optim.rl"), "cannot show params.optim.rl: none of the"),
        (("runs", "model=mlp"), "model=mlp is not a tracking setting"),
        (("runs", "tracking.uri=sqlite:///nowhere/mlflow.db"), "no tracking store at nowhere"),
        (("runs", "tracking.uri=sqlite:///data"), "sqlite:///data names a folder, not a file"),
        (("runs", "--limit", "9" * 23), "argument --limit: a whole number from 1 to 1000000000"),
        (("ui", "--port", "70000"), "argument --port: a whole number from 1 to 65535, got 70000"),
        (
            ("compare", "{a}", "{b}", "--plot", "data/prepared/meta.json/curves.png"),
            "cannot write data/prepared/meta.json/curves.png: data/prepared/meta.json is a file",
        ),
    ],
)
def test_bad_input_is_one_line(trained, args, fragment):
    project, ids = trained
    done = dlpipe(project, *(arg.format(a=ids["0.001"], b=ids["0.003"]) for arg in args))
    assert_one_line_error(done, fragment)


@pytest.mark.parametrize("args", [("runs", "--json"), ("compare", "{a}", "{b}")])
def test_a_reader_gone_ends_the_command_quietly(trained, args):
    """`dlpipe runs --json | head -c1`: once the reader has gone, dlpipe stops as Unix
    tools do, without a word, with the exit code a shell gives one that SIGPIPE ended
    (141). The reader here goes before anything is written, so that it surely goes first."""
    project, ids = trained
    command = [str(BIN_DIR / "dlpipe"), *(a.format(a=ids["0.001"], b=ids["0.003"]) for a in args)]
    process = subprocess.Popen(
        command, cwd=project, env=git_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    process.stdout.close()
    assert process.stderr.read() == b""
    assert process.wait(timeout=60) == 141


def test_runs_imports_neither_mlflow_nor_torch(trained):
    project, _ = trained
    done = run(
        [
            sys.executable,
            "-X",
            "importtime",
            str(BIN_DIR / "dlpipe"),
            "runs",
            "--sort",
            "metrics.test/acc",
        ],
        project,
    )
    timings = [line for line in done.stderr.splitlines() if line.startswith("import time:")]
    imported = {line.rsplit("|", 1)[1].strip().split(".")[0] for line in timings}
    assert {"dlpipe", "sqlite3"} <= imported
    assert not imported & {"mlflow", "torch", "lightning", "hydra"}
    assert done.stdout.count("\n") == 4  # the header and three runs
