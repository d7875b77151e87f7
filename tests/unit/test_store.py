"""Runs read from a sqlite store without MLflow: the same answers as MLflow's own client
gives on a store it wrote, for the filters and orders `dlpipe runs` takes."""

import math
from pathlib import Path

import pytest
from mlflow import MlflowClient

from dlpipe.cli.project import tracking_settings
from dlpipe.errors import ConfigError, TrackingError
from dlpipe.tracking.store import open_store
from dlpipe.tracking.store.query import (
    Clause,
    Key,
    QueryError,
    parse_filter,
    parse_key,
    parse_order,
)
from tests.conftest import CONF_DIR

# name, model, lr, test/acc, status; val/loss is logged per epoch.
RUNS = [
    ("a", "cnn", "0.001", 0.97, "FINISHED"),
    ("b", "mlp", "0.003", 0.99, "FINISHED"),
    ("c", "cnn", "0.003", 0.95, "FAILED"),
    ("d", "Cnn", "0.01", None, "RUNNING"),
]


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> tuple[str, MlflowClient, dict[str, str]]:
    """A store MLflow wrote: the RUNS above, d a child of a, plus a NaN metric on c."""
    uri = f"sqlite:///{tmp_path_factory.mktemp('store') / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    experiment = client.create_experiment("dlpipe")
    client.create_experiment("other")
    ids = {}
    for start, (name, model, lr, acc, status) in enumerate(RUNS):
        tags = {"mlflow.runName": name}
        if name == "d":
            tags["mlflow.parentRunId"] = ids["a"]
        run = client.create_run(experiment, start_time=1000 * (start + 1), tags=tags)
        run_id = ids[name] = run.info.run_id
        client.log_param(run_id, "model.name", model)
        client.log_param(run_id, "optim.lr", lr)
        for epoch in range(3):
            client.log_metric(run_id, "val/loss", 1.0 / (epoch + 1 + start), step=epoch)
        if acc is not None:
            client.log_metric(run_id, "test/acc", acc)
        if status != "RUNNING":
            client.set_terminated(run_id, status, end_time=1000 * (start + 1) + 500)
    client.log_metric(ids["c"], "train/loss", math.nan)
    return uri, client, ids


@pytest.mark.parametrize(
    "text",
    [
        "",
        "metrics.test/acc > 0.96",
        "metrics.`test/acc` >= 0.97 and params.model.name = 'cnn'",
        "metric.val/loss < 0.3",
        "params.optim.lr != '0.003'",
        "params.model.name LIKE 'c%'",
        "params.model.name ILIKE 'c%'",
        "tags.mlflow.parentRunId = '{a}'",
        "attributes.status = 'FINISHED'",
        "attributes.run_name = 'b'",
        "attributes.start_time > 1500 AND attributes.end_time <= 3500",
        'run.status != "RUNNING"',
        "metrics.train/loss > -1",
    ],
)
@pytest.mark.parametrize(
    "order", [None, "metrics.test/acc DESC", "params.optim.lr", "attributes.run_name DESC"]
)
def test_search_finds_what_mlflow_finds(store, text, order):
    uri, client, ids = store
    clauses = parse_filter(text.format(**ids))
    sort = parse_order(order) if order else None
    ours = open_store(uri).search("dlpipe", clauses, sort, limit=10)
    theirs = client.search_runs(
        [client.get_experiment_by_name("dlpipe").experiment_id],
        filter_string=" and ".join(clause.mlflow() for clause in clauses),
        order_by=[sort.mlflow()] if sort else None,
    )
    assert [run.run_id for run in ours] == [run.info.run_id for run in theirs]


def test_a_run_reads_back_as_mlflow_holds_it(store):
    uri, client, ids = store
    ours, theirs = open_store(uri).get(ids["c"]), client.get_run(ids["c"])
    assert (ours.run_name, ours.status, ours.start_time, ours.end_time) == (
        "c",
        "FAILED",
        theirs.info.start_time,
        theirs.info.end_time,
    )
    assert ours.params == theirs.data.params and ours.tags == theirs.data.tags
    assert math.isnan(ours.metrics.pop("train/loss"))
    assert ours.metrics == {key: v for key, v in theirs.data.metrics.items() if key != "train/loss"}
    history = client.get_metric_history(ids["c"], "val/loss")
    assert open_store(uri).history(ids["c"], "val/loss") == [(m.step, m.value) for m in history]


def test_limit_new_experiment_and_unknown_run(store):
    uri, _, _ = store
    reader = open_store(uri)
    assert [run.run_name for run in reader.search("dlpipe", [], None, limit=2)] == ["d", "c"]
    assert reader.search("other", [], None, limit=5) == []
    assert reader.search("never made", [], None, limit=5) == []
    with pytest.raises(TrackingError, match="no run 0123 in sqlite:///"):
        reader.get("0123")


def test_missing_or_foreign_store_is_named(tmp_path: Path):
    with pytest.raises(TrackingError, match=r"no tracking store at .*nowhere\.db: train first"):
        open_store(f"sqlite:///{tmp_path / 'nowhere.db'}")
    (tmp_path / "notes.db").write_text("not a database")
    with pytest.raises(TrackingError, match=r"notes\.db is not a readable MLflow store"):
        open_store(f"sqlite:///{tmp_path / 'notes.db'}").search("dlpipe", [], None, 1)
    with pytest.raises(TrackingError, match=r"cannot read runs from postgresql://u:\*\*\*@db"):
        open_store("postgresql://u:pw@db/mlflow")


def test_filter_keys_values_and_aliases():
    assert parse_filter('metric.`test acc` >= 1e-3 and param.optim.lr = "0.1"') == [
        Clause(Key("metrics", "test acc"), ">=", 0.001),
        Clause(Key("params", "optim.lr"), "=", "0.1"),
    ]
    assert parse_filter("tags.x like '%a' AND attr.status != 'FAILED'") == [
        Clause(Key("tags", "x"), "LIKE", "%a"),
        Clause(Key("attributes", "status"), "!=", "FAILED"),
    ]
    assert parse_order("metrics.test/acc desc").descending
    assert not parse_order("attributes.start_time").descending
    assert parse_key("params.model.hidden") == Key("params", "model.hidden")


@pytest.mark.parametrize(
    "text,message",
    [
        ("metrics.test/acc >", "bad filter at 'metrics.test/acc >': a clause is"),
        ("metrics.a > 1 or metrics.b < 2", "bad filter at 'or metrics.b < 2': clauses are joined"),
        ("test/acc > 0.9", "bad filter at 'test/acc > 0.9'"),
        ("metrics.a > high", "metrics.a compares with a number, got high"),
        ("params.lr = 0.1", "params.lr compares with a quoted string: params.lr = '0.1'"),
        ("params.lr > '0.1'", "params.lr takes the operators = != LIKE ILIKE, not >"),
        ("metrics.a LIKE '1'", "metrics.a takes the operators = != < <= > >=, not LIKE"),
        ("models.a = 'x'", "unknown kind 'models'"),
        ("attributes.colour = 'red'", "unknown attribute 'colour': choose one of"),
    ],
)
def test_bad_filter_says_what_is_wrong(text, message):
    with pytest.raises(QueryError) as raised:
        parse_filter(text)
    assert str(raised.value).startswith(message)


def test_bad_order_is_named():
    with pytest.raises(
        QueryError, match=r"cannot sort by 'metrics\.a upward': write <kind>\.<key>"
    ):
        parse_order("metrics.a upward")


def test_tracking_settings_follow_conf_environment_and_overrides(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    default = (f"sqlite:///{tmp_path / 'mlflow.db'}", "dlpipe")
    assert tracking_settings(CONF_DIR, []) == default
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert tracking_settings(CONF_DIR, []) == ("http://127.0.0.1:5000", "dlpipe")
    overrides = ["tracking.uri=sqlite:///other.db", "tracking.experiment=digits"]
    assert tracking_settings(CONF_DIR, overrides) == ("sqlite:///other.db", "digits")
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    assert tracking_settings(CONF_DIR, ["tracking.uri=null"]) == default


@pytest.mark.parametrize(
    "override,message",
    [
        ("model=cnn", "model=cnn is not a tracking setting"),
        ("tracking.retry_seconds=5", "tracking.retry_seconds=5 is not a tracking setting"),
        ("tracking=wandb", "unknown tracking 'wandb': choose one of mlflow"),
    ],
)
def test_other_overrides_are_refused(override, message):
    with pytest.raises(ConfigError) as raised:
        tracking_settings(CONF_DIR, [override])
    assert str(raised.value).startswith(message)
