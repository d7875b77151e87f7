"""`dlpipe ui` opens the experiment's runs, not MLflow's GenAI home page."""

import json
from pathlib import Path

from dlpipe.tracking import client as tracking
from dlpipe.tracking.ui import VIEW_TAG, runs_view


def test_address_opens_the_training_runs_with_their_key_columns(tmp_path: Path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = tracking.get_client(uri)
    assert runs_view(uri, "dlpipe") is None  # nothing trained yet
    run_id = tracking.open_run(client, "dlpipe", {})
    tracking.log_params(client, run_id, {"model.name": "cnn", "optim.lr": 0.001, "seed": 0})
    tracking.log_metrics(client, run_id, {"test/acc": 0.99, "val/acc": 0.98})
    experiment = client.get_experiment_by_name("dlpipe")
    view = runs_view(uri, "dlpipe")
    assert view == (
        f"/#/experiments/{experiment.experiment_id}/runs"
        "?workflowType=machine_learning&viewStateShareKey=dlpipe"
    )
    shown = json.loads(client.get_experiment(experiment.experiment_id).tags[VIEW_TAG])
    assert shown["selectedColumns"] == [
        "attributes.`Source`",
        "attributes.`Models`",
        "attributes.`Dataset`",
        "params.`model.name`",
        "params.`optim.lr`",
        "metrics.`test/acc`",
    ]
