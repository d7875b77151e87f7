"""The evaluate stage: test metrics and plots, written to reports/ and to the training's MLflow run.

It attaches to the run named in models/run.json; it never opens a second run for a model.
What describes the model (its data, settings, task and registered name) comes from that
record too, never from the config: a bare `python pipelines/evaluate.py` evaluates
whichever training ran last. It also logs the model to that run and registers it (see
dlpipe.registry).
"""

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig

from dlpipe import champion, checkpoints, config, files, generation, plots, registry, tracking
from dlpipe import metrics as task_metrics
from dlpipe.data.arrays import load_prepared
from dlpipe.errors import ConfigError, DataError, TrackingError
from dlpipe.paths import PREPARED_DIR, PROJECT, Outputs

_RUN_TRAIN = "run the train stage first: `dvc repro train` or `python pipelines/train.py`"
_RECORD_KEYS = (
    "run_id",
    "data",
    "registry_name",
    "model",
    "task",
    "input_shape",
    "num_outputs",
    "classes",
    "data_hash",
    "best_checkpoint",
    "best_checkpoint_sha256",
)
# What describes the trained model, as config keys, and the record's keys holding it.
_RECORDED = {"data": "data", "model": "model", "multitask.shared": "shared"}
# Group choices that set those; a preset may set both.
_GROUPS = {"data": ("data",), "model": ("model",), "experiment": ("data", "model")}
# How many test samples one forward pass takes: evaluate's own, not the model's.
_EVALUATE_OWN = ("data.batch_size",)


def evaluate(
    cfg: DictConfig, out: Outputs = PROJECT, overrides: Sequence[str] = ()
) -> dict[str, float]:
    """Score the best checkpoint on the test split; return the metrics written to metrics.json.

    Everything is checked (run record, `overrides` against it, tracking run, data,
    checkpoint) before anything is written, so a failed evaluation leaves the previous
    reports in place.

    Args:
        overrides: the command line's explicit overrides (Hydra's `overrides.task`).
    """
    record = _read_run_record(out)
    check_overrides(cfg, record, overrides, out.run_file)
    # A checkpoint that is missing, truncated or another model's is named as such before
    # its checksum, which would only say that it changed.
    model = load_model(record)
    _check_saved_by_run(record)
    client = tracking.get_client(tracking.resolve_uri(cfg.tracking.uri))
    _check_run_exists(client, record["run_id"], out)
    # Reconstruction is compared with PCA fitted on the training split.
    splits = ("train", "test") if record["task"] == "reconstruction" else ("test",)
    data = load_prepared(PREPARED_DIR, splits)
    if data.meta["hash"] != record["data_hash"]:
        raise DataError(
            f"{PREPARED_DIR} changed since run {record['run_id']} was trained: "
            "retrain (`dvc repro`) before evaluating"
        )
    # Checked before any report is written: a table model reads its columns from the table.
    served = registry.servable(model, record, data.meta)
    for folder in (out.reports, out.plots):
        files.clear_partial(folder)
    if record["task"] == "generation":
        classifier = generation.classifier_of(client, cfg.evaluate.classifier, data.meta)
        metrics, written = generation.score_samples(
            model, data.splits["test"][0], cfg.evaluate.samples, cfg.seed, classifier, out.plots
        )
    else:
        outputs = predict(model, data.splits["test"][0], cfg.data.batch_size)
        metrics, written = _score(record, data, outputs, out.plots)
    files.write_json(out.metrics_file, metrics)
    written += plots.learning_curves(files.read_json(out.history_file), out.plots)
    tracking.log_metrics(client, record["run_id"], metrics)
    for path in written:
        if path.suffix == ".png":
            client.log_artifact(record["run_id"], str(path), "plots")
    if served:
        given = cfg.registry
        # `auto`: the name the training gave (registry.name then), else its data set's.
        name = record["registry_name"] if given.name == champion.AUTO else given.name
        registry.publish(client, served, data.splits["test"][0], name, given.metric, given.promote)
    return metrics


def check_overrides(
    cfg: DictConfig, record: dict, overrides: Sequence[str], run_file: Path
) -> None:
    """An explicit override of the data, the model or a preset must agree with the training
    that `record` describes: evaluate takes those from the record, so an override that
    differs would go unheeded while its user believes it holds.

    Raises:
        ConfigError: the first override that contradicts the record, naming both values.
    """
    recorded = _recorded_settings(record)
    given = config.flatten(config.to_dict(cfg))
    for override in overrides:
        key = override.split("=", 1)[0].lstrip("+~")
        for setting in _GROUPS.get(key, (key,)):
            for leaf in _leaves_under(setting, [*recorded, *given]):
                if given.get(leaf) != recorded.get(leaf):
                    raise ConfigError(
                        f"{override} contradicts the training {run_file} records (run "
                        f"{record['run_id']}): {leaf} is {_shown(given.get(leaf))} here but "
                        f"{_shown(recorded.get(leaf))} there; evaluate takes the data and the "
                        "model from the training: drop the override, or prepare and train "
                        "with it first"
                    )


def _recorded_settings(record: dict) -> dict:
    """The settings describing the trained model, as the flat config keys holding them."""
    settings = {}
    for key, field in _RECORDED.items():
        value = record[field]
        settings.update(
            config.flatten(value, f"{key}.") if isinstance(value, dict) else {key: value}
        )
    return settings


def _leaves_under(setting: str, leaves: list[str]) -> list[str]:
    """The keys of `leaves` at or under `setting` that describe the trained model, names
    first: a data set or model of another name is said to be so, not a setting of it."""

    def under(leaf: str, key: str) -> bool:
        return leaf == key or leaf.startswith(f"{key}.")

    found = [
        leaf
        for leaf in dict.fromkeys(leaves)
        if under(leaf, setting)
        and any(under(leaf, root) for root in _RECORDED)
        and leaf not in _EVALUATE_OWN
    ]
    return sorted(found, key=lambda leaf: not leaf.endswith(".name"))


def _shown(value) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _score(record: dict, data, outputs: torch.Tensor, folder: Path) -> tuple[dict, list[Path]]:
    """The task's test metrics for the model's `outputs`, and the plots written for them."""
    x, y = data.splits["test"]
    task = record["task"]
    if task == "classification":
        metrics, matrix = task_metrics.classification(outputs, y, len(record["classes"]))
        predicted = task_metrics.predicted_classes(outputs).numpy()
        written = plots.confusion(y.numpy(), predicted, matrix.numpy(), record["classes"], folder)
        return metrics, written + _binary_curves(y, outputs, record["classes"], folder)
    if task == "multitask":
        return _score_heads(record["heads"], outputs, y, data.meta["stats"], folder)
    if task == "reconstruction":
        latent = record["model"]["latent"]
        metrics = task_metrics.reconstruction(outputs, x, data.splits["train"][0], latent)
        return metrics, plots.reconstructions(x.numpy(), outputs.numpy(), folder)
    stats = data.meta["stats"]
    if task == "forecasting":
        metrics = task_metrics.forecasting(outputs, x, y, stats)
    else:
        metrics = task_metrics.regression(outputs, y, stats)
    actual, estimate = task_metrics.unscale(y, stats), task_metrics.unscale(outputs, stats)
    written = plots.predicted_vs_actual(actual.numpy(), estimate.numpy(), folder)
    if task == "forecasting":
        return metrics, written + plots.forecasts(actual.numpy(), estimate.numpy(), folder)
    return metrics, written + plots.residuals(actual.numpy(), estimate.numpy(), folder)


def _binary_curves(
    target: torch.Tensor,
    scores: torch.Tensor,
    classes: list[str],
    folder: Path,
    head: str | None = None,
) -> list[Path]:
    """The ROC and precision-recall curves of a classifier of two classes; none for more."""
    if len(classes) != 2:
        return []
    probability = plots.positive_probability(scores.numpy())
    return plots.roc_pr(target.numpy(), probability, classes, folder, head)


def _score_heads(
    heads: list[dict], outputs: torch.Tensor, y: torch.Tensor, stats: dict, folder: Path
) -> tuple[dict, list[Path]]:
    """Each head's test metrics, named test/<head>/<metric>, and its plots, named <head>_*."""
    from dlpipe.data.raw import head_slices
    from dlpipe.tasks.objectives import head_target

    outputs_of, columns_of = head_slices(heads, "outputs"), head_slices(heads, "columns")
    metrics, written = {}, []
    for head in heads:
        name, columns = head["name"], columns_of[head["name"]]
        scores, target = outputs[:, outputs_of[name]], head_target(y, columns, head["task"])
        if head["task"] == "classification":
            found, matrix = task_metrics.classification(scores, target, len(head["classes"]))
            predicted = task_metrics.predicted_classes(scores).numpy()
            written += plots.confusion(
                target.numpy(), predicted, matrix.numpy(), head["classes"], folder, name
            )
            written += _binary_curves(target, scores, head["classes"], folder, name)
        else:
            scale = {
                key: np.asarray(value)[..., columns]
                for key, value in stats.items()
                if key.startswith("y_")
            }
            found = task_metrics.regression(scores, target, scale)
            actual = task_metrics.unscale(target, scale)
            estimate = task_metrics.unscale(scores, scale)
            written += plots.predicted_vs_actual(actual.numpy(), estimate.numpy(), folder, name)
            written += plots.residuals(actual.numpy(), estimate.numpy(), folder, name)
        metrics.update({key.replace("test/", f"test/{name}/"): v for key, v in found.items()})
    return metrics, written


def _read_run_record(out: Outputs) -> dict:
    for needed in (out.run_file, out.history_file):
        if not Path(needed).exists():
            raise DataError(f"{needed} is missing: {_RUN_TRAIN}")
    try:
        record = files.read_json(out.run_file)
        missing = sorted(set(_RECORD_KEYS) - set(record))
    except (ValueError, TypeError) as exc:
        raise DataError(f"{out.run_file} is unreadable ({exc}): {_RUN_TRAIN}") from exc
    if missing:
        raise DataError(f"{out.run_file} lacks {', '.join(missing)}: {_RUN_TRAIN}")
    return record


def _check_saved_by_run(record: dict) -> None:
    """The best checkpoint must be the very file the run saved, not another of the same model."""
    if files.sha256(record["best_checkpoint"]) != record["best_checkpoint_sha256"]:
        raise DataError(
            f"{record['best_checkpoint']} is not the checkpoint run {record['run_id']} saved: "
            f"{_RUN_TRAIN}"
        )


def _check_run_exists(client, run_id: str, out: Outputs) -> None:
    from mlflow.exceptions import MlflowException

    try:
        client.get_run(run_id)
    except MlflowException as exc:
        raise TrackingError(
            f"run {run_id} (from {out.run_file}) is not in tracking store "
            f"{client.tracking_uri}: evaluate with the tracking.uri the model was trained with"
        ) from exc


def load_model(record: dict) -> torch.nn.Module:
    """Rebuild the model from its recorded settings and load the best weights (no pickled code)."""
    from dlpipe.models import build_for_data

    model = build_for_data(
        record["model"],
        record["input_shape"],
        record["num_outputs"],
        record.get("heads"),
        record.get("shared"),
    )
    checkpoints.load_into(model, record["best_checkpoint"], _RUN_TRAIN)
    return model.eval()


@torch.inference_mode()
def predict(model: torch.nn.Module, x: torch.Tensor, batch_size: int) -> torch.Tensor:
    """The model's outputs (scores or values) for every row of `x`, `batch_size` rows at a time."""
    return torch.cat(
        [model(x[start : start + batch_size]) for start in range(0, len(x), batch_size)]
    )
