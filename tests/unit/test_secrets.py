"""What looks secret is masked before it reaches MLflow params, artifacts or log lines."""

import pytest

from dlpipe.secrets import MASK, looks_secret, mask, mask_override, mask_text


@pytest.mark.parametrize(
    "name",
    ["password", "tracking.api_key", "DB_PASSWORD", "authToken", "AWS_SECRET_ACCESS_KEY", "key"],
)
def test_secret_looking_names(name):
    assert looks_secret(name)


@pytest.mark.parametrize(
    "name", ["optim.lr", "data.keep", "trainer.checkpoint_monitor", "data.categorical", "seed"]
)
def test_every_day_names_are_not_secret(name):
    assert not looks_secret(name)


def test_config_values_under_secret_names_are_masked(monkeypatch):
    monkeypatch.setenv("MY_SERVICE_TOKEN", "tok-1234567")
    tree = {
        "tracking": {"uri": "https://ana:hunter22@mlflow.example.com", "api_key": "abc123"},
        "data": {"path": "/data/tok-1234567/train.csv", "keep": [1, 2], "password": None},
        "optim": {"lr": 0.001},
    }
    assert mask(tree) == {
        "tracking": {"uri": f"https://ana:{MASK}@mlflow.example.com", "api_key": MASK},
        # The value of a secret environment variable, wherever a config holds it.
        "data": {"path": f"/data/{MASK}/train.csv", "keep": [1, 2], "password": None},
        "optim": {"lr": 0.001},
    }


def test_overrides_and_log_text_are_masked(monkeypatch):
    monkeypatch.setenv("DB_PASSWORD", "s3cr3t-pw")
    assert mask_override("+tracking.token=abc") == f"+tracking.token={MASK}"
    assert mask_override("optim.lr=0.1") == "optim.lr=0.1"
    assert mask_override("data.path=/x/s3cr3t-pw.csv") == f"data.path=/x/{MASK}.csv"
    assert mask_text("at http://u:p@host:5000") == f"at http://u:{MASK}@host:5000"
