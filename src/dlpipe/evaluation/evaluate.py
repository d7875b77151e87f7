"""The evaluate stage: test metrics and plots, written to reports/ and to the training's MLflow run.

It attaches to the run named in models/run.json; it never opens a second run for a model.
What describes the model (its data, settings, task and registered name) comes from that
record too, never from the config: a bare `python pipelines/evaluate.py` evaluates
whichever training ran last. It also logs the model to that run and registers it (see
dlpipe.tracking.registry).
"""

import json
from collections.abc import Sequence
from pathlib import Path

from omegaconf import DictConfig

from dlpipe import files
from dlpipe.config import checks as config
from dlpipe.data.arrays import load_prepared
from dlpipe.data.shard_loader import streaming
from dlpipe.errors import ConfigError, DataError, TrackingError
from dlpipe.evaluation import generation, plots
from dlpipe.evaluation.scoring import first_inputs
from dlpipe.paths import PREPARED_DIR, PROJECT, Outputs
from dlpipe.record import TRAIN_FIRST, RunRecord
from dlpipe.tasks import configured
from dlpipe.tasks.kinds import Scoring
from dlpipe.tracking import champion, registry
from dlpipe.tracking import client as tracking
from dlpipe.training import checkpoints

# The config keys of the settings describing the trained model, which its record holds.
_DESCRIBING = tuple(RunRecord.configured())
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
    model = checkpoints.load_model(record.serving(), record.best_checkpoint, TRAIN_FIRST)
    _check_saved_by_run(record)
    client = tracking.get_client(tracking.resolve_uri(cfg.tracking.uri))
    _check_run_exists(client, record.run_id, out)
    kind = configured.resolve(record.task_config, record.task)
    data = load_prepared(PREPARED_DIR, kind.splits, stream=kind.streamed)
    if data.meta["hash"] != record.data_hash:
        raise DataError(
            f"{PREPARED_DIR} changed since run {record.run_id} was trained: "
            "retrain (`dvc repro`) before evaluating"
        )
    # Checked before any report is written: a table model reads its columns from the table,
    # and which way the metric it is registered on is better must be known.
    served = registry.servable(model, record, data.meta) if kind.servable else None
    heads = record.heads
    criterion = champion.judged(kind, heads, cfg.registry.metric) if served else None
    for folder in (out.reports, out.plots):
        files.clear_partial(folder)
    scoring = Scoring(
        model=model,
        record=record,
        data=data,
        folder=out.plots,
        batch_size=cfg.data.batch_size,
        seed=cfg.seed,
        samples=cfg.evaluate.samples,
        classifier=lambda: generation.classifier_of(client, cfg.evaluate.classifier, data.meta),
        stream=streaming(cfg.data),
    )
    metrics, written = kind.test(scoring)
    files.write_json(out.metrics_file, metrics)
    history = files.read_json(out.history_file)
    written += plots.learning_curves(history, out.plots, kind.curves(heads))
    tracking.log_metrics(client, record.run_id, metrics)
    for path in written:
        if path.suffix in (".png", ".txt"):  # pictures, and a language model's samples
            tracking.log_artifact(client, record.run_id, path, "plots")
    if served:
        given = cfg.registry
        # `auto`: the name the training gave (registry.name then), else its data set's.
        name = record.registry_name if given.name == champion.AUTO else given.name
        example = first_inputs(scoring)
        registry.publish(client, served, example, name, criterion, given.promote)
    return metrics


def check_overrides(
    cfg: DictConfig, record: RunRecord, overrides: Sequence[str], run_file: Path
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
                        f"{record.run_id}): {leaf} is {_shown(given.get(leaf))} here but "
                        f"{_shown(recorded.get(leaf))} there; evaluate takes the data and the "
                        "model from the training: drop the override, or prepare and train "
                        "with it first"
                    )


def _recorded_settings(record: RunRecord) -> dict:
    """The settings describing the trained model, as the flat config keys holding them."""
    settings = {}
    for key, value in record.settings().items():
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
        and any(under(leaf, root) for root in _DESCRIBING)
        and leaf not in _EVALUATE_OWN
    ]
    return sorted(found, key=lambda leaf: not leaf.endswith(".name"))


def _shown(value) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _read_run_record(out: Outputs) -> RunRecord:
    record = RunRecord.read(out.run_file)
    if not Path(out.history_file).exists():
        raise DataError(f"{out.history_file} is missing: {TRAIN_FIRST}")
    return record


def _check_saved_by_run(record: RunRecord) -> None:
    """The best checkpoint must be the very file the run saved, not another of the same model."""
    if files.sha256(record.best_checkpoint) != record.best_checkpoint_sha256:
        raise DataError(
            f"{record.best_checkpoint} is not the checkpoint run {record.run_id} saved: "
            f"{TRAIN_FIRST}"
        )


def _check_run_exists(client, run_id: str, out: Outputs) -> None:
    try:
        client.get_run(run_id)
    except tracking.TrackingStoreError as exc:
        raise TrackingError(
            f"run {run_id} (from {out.run_file}) is not in tracking store "
            f"{client.tracking_uri}: evaluate with the tracking.uri the model was trained with"
        ) from exc
