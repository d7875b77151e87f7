"""What looks secret is masked before it reaches MLflow params, artifacts or log lines."""

import logging
import shlex
import sys
from pathlib import Path

import pytest
import yaml
from hydra.types import RunMode
from omegaconf import OmegaConf

from dlpipe.config.secrets import (
    MASK,
    MaskHydraRecord,
    looks_secret,
    mask,
    mask_override,
    mask_text,
)

SECRET = "hunter2secret"
# A password in a URL, in each form a user may write one: as given, and as it is shown.
URL_FORMS = [
    (f"http://alice:{SECRET}@127.0.0.1:5000", f"http://alice:{MASK}@127.0.0.1:5000"),
    (f"http://:{SECRET}@127.0.0.1:5000", f"http://:{MASK}@127.0.0.1:5000"),  # no user name
    # An `@` in the password, not percent-encoded: the host is what follows the last one.
    (
        f"https://alice:p@ss-{SECRET}@mlflow.example.com/x",
        f"https://alice:{MASK}@mlflow.example.com/x",
    ),
    (
        f"postgresql://optuna:{SECRET}@db:5432/studies",
        f"postgresql://optuna:{MASK}@db:5432/studies",
    ),
]


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


@pytest.mark.parametrize("url,shown", URL_FORMS)
def test_a_url_password_is_masked_in_every_form(url, shown):
    assert mask_text(f"tracking server {url} is unreachable") == (
        f"tracking server {shown} is unreachable"
    )
    assert mask_override(f"tracking.uri={url}") == f"tracking.uri={shown}"
    assert mask({"tracking": {"uri": url}}) == {"tracking": {"uri": shown}}
    line = mask_text(shlex.join(["python", "train.py", f"tracking.uri={url}", "seed=1"]))
    assert line == f"python train.py tracking.uri={shown} seed=1"


@pytest.mark.parametrize(
    "text",
    [
        "http://127.0.0.1:5000/#/experiments/1",
        "http://alice@mlflow.example.com:5000",  # a user name is no secret
        "http://mlflow.example.com:5000/a@b",  # an `@` in the path, after the port
        "sqlite:///data/mlflow.db",
        "mail alice@example.com",
    ],
)
def test_text_without_a_url_password_is_kept(text):
    assert mask_text(text) == text


def test_values_of_secret_keys_on_the_command_line_are_masked_wherever_they_appear(monkeypatch):
    monkeypatch.setattr(sys, "argv", ["pipelines/train.py", f"+tracking.token={SECRET}", "seed"])
    # As Hydra quotes a command line it cannot parse, in a message or a log line.
    said = f"Error when parsing index: 1, string: seed out of ['+tracking.token={SECRET}', 'seed']"
    assert SECRET not in mask_text(said)
    assert mask_text("seed=1 optim.lr=0.1") == "seed=1 optim.lr=0.1"


@pytest.mark.parametrize("url,shown", URL_FORMS)
def test_hydra_record_of_a_job_is_masked_in_every_form(tmp_path, url, shown):
    record = tmp_path / "outputs" / ".hydra"
    record.mkdir(parents=True)
    (record / "overrides.yaml").write_text(yaml.safe_dump([f"tracking.uri={url}"]))
    (record / "hydra.yaml").write_text(yaml.safe_dump({"hydra": {"runtime": {"uri": url}}}))
    (record / "config.yaml").write_text(yaml.safe_dump({"tracking": {"uri": url}}))
    config = OmegaConf.create(
        {"hydra": {"output_subdir": ".hydra", "runtime": {"output_dir": str(tmp_path / "outputs")}}}
    )

    MaskHydraRecord().on_job_start(config)

    for name in ("overrides.yaml", "hydra.yaml", "config.yaml"):
        assert SECRET not in (record / name).read_text() and shown in (record / name).read_text()


def test_a_sweep_record_is_masked_as_its_first_job_starts(tmp_path):
    """Before the sweep ends: a sweep killed midway must not leave the password behind."""
    url, shown = URL_FORMS[1]
    (tmp_path / "multirun.yaml").write_text(yaml.safe_dump({"tracking": {"uri": url}}))
    config = OmegaConf.create(
        {
            "hydra": {
                "mode": RunMode.MULTIRUN,
                "output_subdir": None,
                "sweep": {"dir": str(tmp_path)},
            }
        }
    )

    MaskHydraRecord().on_job_start(config)

    assert yaml.safe_load((tmp_path / "multirun.yaml").read_text()) == {"tracking": {"uri": shown}}


@pytest.fixture
def stage_start():
    """Start a stage as Hydra does (its output masked from then on); once the test is
    over, logging and sys.stdout/stderr as they were."""
    factory, stdout, stderr = logging.getLogRecordFactory(), sys.stdout, sys.stderr
    yield lambda: MaskHydraRecord().on_run_start(OmegaConf.create({}))
    logging.setLogRecordFactory(factory)
    sys.stdout, sys.stderr = stdout, stderr


@pytest.mark.parametrize("url,shown", URL_FORMS)
def test_log_lines_are_masked_whoever_logs_them(stage_start, caplog, url, shown):
    stage_start()
    # As Hydra's launcher lists each job's overrides, or its Optuna sweeper the storage.
    logging.getLogger("hydra.core").warning("\t#0 : tracking.uri=%s seed=1", url)
    try:
        raise RuntimeError(f"cannot reach {url}")
    except RuntimeError:
        logging.getLogger("mlflow").exception("request failed")
    assert SECRET not in caplog.text
    assert f"tracking.uri={shown} seed=1" in caplog.text and f"cannot reach {shown}" in caplog.text


@pytest.mark.parametrize("url,shown", URL_FORMS)
def test_error_lines_are_masked(capsys, url, shown):
    from dlpipe.config.compose import fail
    from dlpipe.tracking.client import one_line

    # An exception's text becomes a run's dlpipe.failure tag and a part of error messages.
    assert one_line(RuntimeError(f"cannot reach {url}")) == f"RuntimeError: cannot reach {shown}"
    with pytest.raises(SystemExit):
        fail(f"tracking server {url} is unreachable")
    assert capsys.readouterr().err == f"error: tracking server {shown} is unreachable\n"


def test_a_refused_command_line_is_masked_in_its_error(capsys, monkeypatch):
    from dlpipe.config.compose import compose_checked

    monkeypatch.setattr(sys, "argv", ["pipelines/train.py", f"+tracking.token={SECRET}", "seed"])
    conf = Path(__file__).resolve().parents[2] / "conf"
    with pytest.raises(SystemExit):
        compose_checked(conf, sys.argv[1:])
    said = capsys.readouterr().err
    assert said.startswith("error: cannot compose the config with") and SECRET not in said


def test_a_sweep_parent_run_records_no_secret(tmp_path, monkeypatch):
    from mlflow import MlflowClient

    from dlpipe.tracking.sweep import MlflowSweepCallback

    monkeypatch.setenv("TEAM_API_KEY", "env-held-value")
    overrides = [
        f"tracking.uri={URL_FORMS[1][0]},{URL_FORMS[2][0]}",
        "data.path=/data/env-held-value/train.csv",
    ]
    monkeypatch.setattr(sys, "argv", ["pipelines/train.py", "-m", *overrides])
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    config = OmegaConf.create(
        {
            "tracking": {"uri": uri, "experiment": "dlpipe"},
            "hydra": {
                "sweep": {"dir": str(tmp_path / "multirun")},
                "overrides": {"task": overrides},
                "sweeper": {"_target_": "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"},
            },
        }
    )
    callback = MlflowSweepCallback()
    callback.on_multirun_start(config)

    parent = MlflowClient(uri).get_run(callback.parent).data
    recorded = " ".join([*parent.tags.values(), *parent.params.values()])
    assert "dlpipe.command" in parent.tags and "sweep.overrides" in parent.params
    assert SECRET not in recorded and "env-held-value" not in recorded


def test_what_is_printed_is_masked_whoever_prints_it(stage_start, capsys):
    url, shown = URL_FORMS[1]
    stage_start()
    # As MLflow prints a run's address, and Hydra the overrides of a failed job.
    print(f"View run at: {url}/#/experiments/1")
    sys.stderr.write(f"Error executing job with overrides: {[f'tracking.uri={url}']}\n")
    said = capsys.readouterr()
    assert said.out == f"View run at: {shown}/#/experiments/1\n"
    assert said.err == f"Error executing job with overrides: {[f'tracking.uri={shown}']}\n"


def test_a_url_password_is_masked_as_hydra_escapes_a_sweep_override():
    escaped = f"tracking.uri=http\\://\\:p\\ @ss-{SECRET}@127.0.0.1\\:5000"
    shown = "tracking.uri=http\\://\\:***@127.0.0.1\\:5000"
    assert mask_override(escaped) == shown
    # Hydra's message about a failed job quotes a list of them, backslashes doubled.
    assert mask_text(str([escaped, "seed=1"])) == str([shown, "seed=1"])
