"""Each task through the real stages: prepare, train and evaluate, read back from MLflow."""

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from tests.conftest import make_project, run

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    return make_project(tmp_path_factory.mktemp("tasks") / "project")


def pipeline(project: Path, *overrides: str) -> dict:
    for stage in ("prepare", "train", "evaluate"):
        run([sys.executable, f"pipelines/{stage}.py", *overrides], project)
    metrics = json.loads((project / "reports/metrics.json").read_text())
    run_id = json.loads((project / "models/run.json").read_text())["run_id"]
    logged = MlflowClient(tracking_uri=f"sqlite:///{project / 'mlflow.db'}").get_run(run_id)
    assert logged.info.status == "FINISHED"
    assert {key: logged.data.metrics[key] for key in metrics} == metrics
    return metrics


def logged_plots(project: Path) -> set[str]:
    """The images the last evaluation logged to its run's plots/, each also in reports/plots/."""
    run_id = json.loads((project / "models/run.json").read_text())["run_id"]
    client = MlflowClient(tracking_uri=f"sqlite:///{project / 'mlflow.db'}")
    logged = {Path(artifact.path).name for artifact in client.list_artifacts(run_id, "plots")}
    assert logged <= {path.name for path in (project / "reports/plots").iterdir()}
    return logged


@pytest.mark.parametrize(
    "preset,keys,images",
    [
        (
            "weather_perceptron",
            {"test/acc", "test/auroc", "test/f1", "test/loss"},
            {"confusion.png", "roc.png", "pr.png"},
        ),
        (
            "linear_perceptron",
            {"test/mse", "test/rmse", "test/mae", "test/r2"},
            {"predicted_vs_actual.png", "residuals.png"},
        ),
        (
            "sunspots_gru",
            {"test/rmse", "test/baseline_rmse", "test/skill"},
            {"predicted_vs_actual.png", "forecasts.png"},
        ),
        ("waves_gru", {"test/acc", "test/f1_macro"}, {"confusion.png"}),
        (
            "digits_autoencoder",
            {"test/mse", "test/pca_mse", "test/mse_vs_pca"},
            {"reconstructions.png"},
        ),
    ],
)
def test_presets_run_every_stage(project: Path, preset: str, keys: set, images: set):
    metrics = pipeline(project, f"experiment={preset}", "trainer.max_epochs=2")
    assert keys <= set(metrics)
    assert logged_plots(project) == {"learning_curves.png", *images}
    plots = {path.name for path in (project / "reports/plots").iterdir()}
    if "test/rmse" in keys:
        assert "predictions.csv" in plots
    if "roc.png" in images:
        assert {"roc.csv", "pr.csv"} <= plots


def test_multitask_heads_are_scored_and_monitored_each(project: Path):
    monitor = ["trainer.checkpoint_monitor=val/digit/acc", "trainer.checkpoint_mode=max"]
    metrics = pipeline(project, "experiment=located_digits_cnn", "trainer.max_epochs=3", *monitor)
    assert {
        "test/digit/acc",
        "test/digit/f1_macro",
        "test/position/mae",
        "test/position/r2",
    } <= set(metrics)
    assert 0 <= metrics["test/position/mae"] < 8  # pixels on a 16-pixel canvas
    run_record = json.loads((project / "models/run.json").read_text())
    logged = MlflowClient(tracking_uri=f"sqlite:///{project / 'mlflow.db'}").get_run(
        run_record["run_id"]
    )
    assert logged.data.params["multitask.weights.position"] == "1.0"
    assert logged.data.metrics["best/val/digit/acc"] == run_record["best_score"]
    assert {"val/digit/acc", "val/position/mae", "train/position/loss"} <= set(logged.data.metrics)
    assert logged_plots(project) == {
        "learning_curves.png",
        "digit_confusion.png",
        "position_predicted_vs_actual.png",
        "position_residuals.png",
    }
    curves = (project / "reports/plots/learning_curves.csv").read_text().splitlines()[0]
    assert "val/digit/acc" in curves.split(",")


def test_fine_tuning_starts_from_an_earlier_run(project: Path):
    pipeline(project, "experiment=digits_pretrain", "trainer.max_epochs=1")
    source = json.loads((project / "models/run.json").read_text())["run_id"]
    finetune = ["experiment=digits_finetune", "trainer.max_epochs=1"]
    pipeline(project, *finetune, f"transfer.source={source}", "transfer.freeze=body")
    run_id = json.loads((project / "models/run.json").read_text())["run_id"]
    logged = MlflowClient(tracking_uri=f"sqlite:///{project / 'mlflow.db'}").get_run(run_id)
    assert logged.data.params["transfer.source"] == source
    # The CNN's output layer is its 20th part: it starts fresh, the rest is copied and frozen.
    assert logged.data.tags["dlpipe.transfer_fresh"] == "19.bias,19.weight"
    assert int(logged.data.tags["dlpipe.transfer_frozen"]) > 0


def test_user_table_trains_and_evaluates(project: Path):
    generator = np.random.default_rng(0)
    size = generator.uniform(0, 10, 300)
    colour = generator.choice(["red", "green"], 300)
    label = np.where(size + (colour == "red") * 3 > 6, "big", "small")
    pd.DataFrame({"size": size, "colour": colour, "label": label}).to_csv(
        project / "shapes.csv", index=False
    )
    table = ["data=table", "data.path=shapes.csv", "data.target=label", "model=mlp"]
    metrics = pipeline(project, *table, "trainer.max_epochs=15")
    assert metrics["test/acc"] > 0.85


def test_model_that_does_not_fit_the_data_names_both_shapes(project: Path):
    run([sys.executable, "pipelines/prepare.py", "data=weather"], project)
    done = run([sys.executable, "pipelines/train.py", "data=weather"], project, check=False)
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert line == (
        "error: model 'cnn' expects images shaped (channels, height, width), but the data has "
        "samples shaped (3,): choose a model for this data (e.g. model=mlp)"
    )


def test_gan_samples_are_judged_by_a_classifier(project: Path):
    for stage in ("prepare", "train"):  # a digits classifier
        run([sys.executable, f"pipelines/{stage}.py", "trainer.max_epochs=2"], project)
    classifier = json.loads((project / "models/run.json").read_text())["run_id"]
    gan = ["experiment=digits_gan", "trainer.max_epochs=2"]
    assert set(pipeline(project, *gan)) == {"test/d_acc"}
    assert logged_plots(project) == {"learning_curves.png", "samples.png"}

    judged = [sys.executable, "pipelines/evaluate.py", *gan]
    run([*judged, f"evaluate.classifier={classifier}"], project)
    metrics = json.loads((project / "reports/metrics.json").read_text())
    assert 0.1 <= metrics["test/confidence"] <= 1 and 1 <= metrics["test/classes_covered"] <= 10

    done = run([*judged, f"evaluate.classifier={'0' * 32}"], project, check=False)
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith(f"error: evaluate.classifier={'0' * 32} is not a run in sqlite:")
