"""What looks secret is masked before it reaches MLflow params, artifacts or log lines."""

import pytest
import yaml
from omegaconf import OmegaConf

from dlpipe.secrets import MASK, MaskHydraRecord, looks_secret, mask, mask_override, mask_text


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


def test_hydra_record_of_a_job_is_masked(tmp_path):
    record = tmp_path / "outputs" / ".hydra"
    record.mkdir(parents=True)
    uri = "tracking.uri=https://alice:pw-123@mlflow.example.com"
    (record / "overrides.yaml").write_text(yaml.safe_dump([uri, "optim.lr=0.1"]))
    (record / "hydra.yaml").write_text(
        yaml.safe_dump(
            {"hydra": {"overrides": {"task": [uri]}, "job": {"override_dirname": f"{uri},seed=1"}}}
        )
    )
    (record / "config.yaml").write_text(yaml.safe_dump({"db_password": "pw-123", "seed": 1}))
    config = OmegaConf.create(
        {"hydra": {"output_subdir": ".hydra", "runtime": {"output_dir": str(tmp_path / "outputs")}}}
    )

    MaskHydraRecord().on_job_start(config)

    masked = "tracking.uri=https://alice:***@mlflow.example.com"
    assert yaml.safe_load((record / "overrides.yaml").read_text()) == [masked, "optim.lr=0.1"]
    hydra = yaml.safe_load((record / "hydra.yaml").read_text())["hydra"]
    assert hydra["overrides"]["task"] == [masked]
    assert hydra["job"]["override_dirname"] == f"{masked},seed=1"
    assert yaml.safe_load((record / "config.yaml").read_text()) == {"db_password": MASK, "seed": 1}
