"""The evaluate stage: test metrics and plots, written to reports/ and to the training's MLflow run.

It attaches to the run named in models/run.json; it never opens a second run for a model.
"""

import time
from pathlib import Path

import torch
from omegaconf import DictConfig
from torch.nn import functional as F
from torchmetrics.functional.classification import (
    multiclass_accuracy,
    multiclass_confusion_matrix,
    multiclass_f1_score,
)

from dlpipe import files, paths, plots, tracking
from dlpipe.data.arrays import load_prepared
from dlpipe.errors import DataError

_RUN_TRAIN = "run the train stage first: `dvc repro train` or `python pipelines/train.py`"


def evaluate(cfg: DictConfig) -> dict[str, float]:
    """Score the best checkpoint on the test split; return the metrics written to metrics.json."""
    record = _read_run_record()
    data = load_prepared(paths.PREPARED_DIR, ("test",))
    if data.meta["hash"] != record["data_hash"]:
        raise DataError(
            f"{paths.PREPARED_DIR} changed since run {record['run_id']} was trained: "
            "retrain (`dvc repro`) before evaluating"
        )
    client = tracking.get_client(record["tracking_uri"])
    model = load_model(record)
    x, y = data.splits["test"]
    logits = predict(model, x, cfg.data.batch_size)
    metrics, matrix = classification_metrics(logits, y, record["num_classes"])
    files.write_json(paths.METRICS_FILE, metrics)
    written = plots.confusion(
        y.numpy(), logits.argmax(1).numpy(), matrix.numpy(), record["classes"], paths.PLOTS_DIR
    )
    written += plots.learning_curves(files.read_json(paths.HISTORY_FILE), paths.PLOTS_DIR)
    tracking.log_metrics(client, record["run_id"], metrics, 0, int(time.time() * 1000))
    for path in written:
        if path.suffix == ".png":
            client.log_artifact(record["run_id"], str(path), "plots")
    return metrics


def _read_run_record() -> dict:
    for needed in (paths.RUN_FILE, paths.HISTORY_FILE, paths.BEST_CKPT):
        if not Path(needed).exists():
            raise DataError(f"{needed} is missing: {_RUN_TRAIN}")
    return files.read_json(paths.RUN_FILE)


def load_model(record: dict) -> torch.nn.Module:
    """Rebuild the model from its recorded settings and load the best weights (no pickled code)."""
    from dlpipe.models import build_model

    settings = {key: value for key, value in record["model"].items() if key != "name"}
    model = build_model(
        record["model"]["name"], record["input_shape"], record["num_classes"], **settings
    )
    try:
        checkpoint = torch.load(record["best_checkpoint"], map_location="cpu", weights_only=True)
    except Exception as exc:
        raise DataError(
            f"checkpoint {record['best_checkpoint']} is unreadable ({exc}): {_RUN_TRAIN}"
        ) from exc
    state = {
        key.removeprefix("model."): value
        for key, value in checkpoint["state_dict"].items()
        if key.startswith("model.")
    }
    model.load_state_dict(state)
    return model.eval()


@torch.inference_mode()
def predict(model: torch.nn.Module, x: torch.Tensor, batch_size: int) -> torch.Tensor:
    return torch.cat(
        [model(x[start : start + batch_size]) for start in range(0, len(x), batch_size)]
    )


def classification_metrics(logits: torch.Tensor, y: torch.Tensor, num_classes: int):
    """test/loss, test/acc, test/f1_macro and the confusion matrix (rows: actual)."""
    metrics = {
        "test/loss": F.cross_entropy(logits, y).item(),
        "test/acc": multiclass_accuracy(logits, y, num_classes, average="micro").item(),
        "test/f1_macro": multiclass_f1_score(logits, y, num_classes, average="macro").item(),
    }
    return metrics, multiclass_confusion_matrix(logits, y, num_classes)
