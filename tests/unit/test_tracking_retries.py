"""A tracking store that goes away or is shared: the retry bound, the error past it, and
an experiment two processes create at the same moment."""

import re
import sqlite3  # noqa: F401 (loaded before a read-only check, which runs as `nobody`)
import time

import pytest
from mlflow import MlflowClient
from mlflow.environment_variables import (
    MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR,
    MLFLOW_HTTP_REQUEST_MAX_RETRIES,
    MLFLOW_HTTP_REQUEST_TIMEOUT,
)
from mlflow.exceptions import MlflowException

from dlpipe.errors import ConfigError, TrackingError
from dlpipe.tracking import client as tracking
from tests.conftest import free_port


@pytest.fixture
def retry_settings(monkeypatch):
    """MLflow's retry variables unset for the test, and as they were again after it."""
    for variable in (
        MLFLOW_HTTP_REQUEST_MAX_RETRIES,
        MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR,
        MLFLOW_HTTP_REQUEST_TIMEOUT,
    ):
        monkeypatch.setenv(variable.name, "")  # remembers the value to put back
        monkeypatch.delenv(variable.name)


@pytest.mark.parametrize(
    "seconds,retries,waits", [(0, 1, 0), (5, 3, 6), (30, 5, 30), (60, 6, 62), (486, 10, 486)]
)
def test_retries_span_the_bound_with_the_fewest_tries(seconds, retries, waits):
    policy = tracking.retry_policy(seconds)
    assert policy == {
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": str(retries),
        "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    }
    assert sum(tracking.retry_schedule(retries)) == waits
    assert sum(tracking.retry_schedule(retries - 1)) < seconds or retries == 1


def test_a_bound_beyond_mlflows_retries_is_refused():
    with pytest.raises(ConfigError, match=r"tracking.retry_seconds must be in \[0, 486\], got 600"):
        tracking.retry_policy(600)


def test_the_schema_allows_exactly_the_bounds_mlflow_can_retry_for(make_cfg):
    from dlpipe.config.schema.validate import validate

    validate(make_cfg("tracking.retry_seconds=486"))
    with pytest.raises(ConfigError, match=r"tracking.retry_seconds must be .*486"):
        validate(make_cfg("tracking.retry_seconds=487"))


def test_policy_applies_to_mlflow_and_keeps_a_timeout_already_set(retry_settings, monkeypatch):
    tracking.use_retry_policy(5)
    assert MLFLOW_HTTP_REQUEST_MAX_RETRIES.get() == 3
    assert MLFLOW_HTTP_REQUEST_TIMEOUT.get() == 10
    assert tracking.retrying_seconds() == 6
    monkeypatch.setenv(MLFLOW_HTTP_REQUEST_TIMEOUT.name, "300")
    tracking.use_retry_policy(5)
    assert MLFLOW_HTTP_REQUEST_TIMEOUT.get() == 300


def test_server_gone_past_the_bound_is_one_tracking_error_naming_it(retry_settings):
    uri = f"http://127.0.0.1:{free_port()}"  # nothing listens: every connection is refused
    tracking.use_retry_policy(2)
    client = MlflowClient(tracking_uri=uri)
    started = time.monotonic()

    with pytest.raises(TrackingError) as raised, tracking.closing_run(client, "a1b2"):
        tracking.log_metrics(client, "a1b2", {"val/loss": 0.5}, step=3)

    assert time.monotonic() - started >= 2  # it did wait the bound out
    assert str(raised.value) == (
        f"tracking server {uri} stopped answering: no answer after retrying for 2 s "
        "(tracking.retry_seconds); run a1b2 stays RUNNING there until the next training on "
        "this host marks it FAILED or resumes it (`dlpipe runs --stale` marks it now). "
        "Check the server, then train again"
    )


def test_an_answer_is_not_taken_for_a_server_gone(tmp_path, retry_settings):
    uri = f"http://127.0.0.1:{free_port()}"
    tracking.use_retry_policy(0)
    with pytest.raises(MlflowException) as refused:
        MlflowClient(tracking_uri=uri).get_run("a1b2")
    with pytest.raises(MlflowException) as answered:
        tracking.get_client(f"sqlite:///{tmp_path / 'mlflow.db'}").get_run("a1b2")
    assert tracking.gave_up_on_server(refused.value)
    assert not tracking.gave_up_on_server(answered.value)


class SecondToCreate:
    """A client that finds no experiment, as another process creates it at that moment."""

    def __init__(self, client: MlflowClient):
        self.client, self.looked = client, False

    def get_experiment_by_name(self, name: str):
        if not self.looked:
            self.looked = True
            self.client.create_experiment(name)  # the other process, a moment ahead
            return None
        return self.client.get_experiment_by_name(name)

    def create_experiment(self, name: str) -> str:
        return self.client.create_experiment(name)


def test_experiment_created_at_the_same_moment_by_another_process_is_used(tmp_path):
    client = tracking.get_client(f"sqlite:///{tmp_path / 'mlflow.db'}")

    found = tracking.experiment_id(SecondToCreate(client), "shared")

    assert found == client.get_experiment_by_name("shared").experiment_id


@pytest.mark.parametrize(
    "store,fragment",
    [
        ("sqlite:///{tmp}", "sqlite:///{tmp} names a folder, not a file: name the store's file"),
        ("sqlite:///{tmp}/none/mlflow.db", "cannot be created: folder {tmp}/none does not exist"),
        ("sqlite://", "sqlite:// names no file, and a store in memory keeps no run"),
        ("sqlite:///:memory:", "names no file, and a store in memory keeps no run"),
        ("bogus://x", "tracking store bogus://x cannot be used"),
        ("http://[::1", "tracking.uri http://[::1 is no URL (Invalid IPv6 URL)"),
        ("http://127.0.0.1:99999", "is no URL (Port out of range 0-65535)"),
    ],
)
def test_a_store_that_cannot_work_is_refused_at_once(tmp_path, retry_settings, store, fragment):
    started = time.monotonic()
    with pytest.raises(TrackingError) as raised:
        tracking.get_client(store.format(tmp=tmp_path), retry_seconds=30)
    assert time.monotonic() - started < 5  # no retries: none would mend it
    assert fragment.format(tmp=tmp_path) in str(raised.value)
    assert not list(tmp_path.iterdir())  # no store file left behind


def test_a_read_only_store_folder_is_refused_at_once(read_only_folder, retry_settings):
    with pytest.raises(TrackingError, match=re.escape(f"read-only: make {read_only_folder} writ")):
        tracking.get_client(f"sqlite:///{read_only_folder / 'mlflow.db'}")
