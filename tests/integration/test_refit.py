"""trainer.refit through the stages: the refit model is the one evaluated, and the run says so."""

import json
import sys
from pathlib import Path

import pytest
from mlflow import MlflowClient

from tests.conftest import run

pytestmark = pytest.mark.slow


def test_refit_model_is_the_one_tested_and_says_so(project: Path):
    """best.ckpt is the model refit on train+val for the chosen epochs; evaluate tests it
    in the training's run, which records the refit."""
    run([sys.executable, "pipelines/prepare.py"], project)
    train = [sys.executable, "pipelines/train.py", "trainer.max_epochs=2", "trainer.refit=true"]
    done = run([*train, "trainer.early_stopping=null", "model=mlp"], project)
    assert "refit on train+val for" in done.stderr + done.stdout
    record = json.loads((project / "models/run.json").read_text())
    assert record["refit_epochs"] in (1, 2)
    run([sys.executable, "pipelines/evaluate.py"], project)
    client = MlflowClient(f"sqlite:///{project / 'mlflow.db'}")
    trained = client.get_run(record["run_id"])
    assert trained.data.tags["dlpipe.refit_epochs"] == str(record["refit_epochs"])
    assert trained.data.params["trainer.refit"] == "True"
    assert "test/acc" in trained.data.metrics
