"""The `dlpipe models`, `promote` and `predict` commands: the models a project can train,
and a trained one put to use.

`models` reads the config folders only. `promote` and `predict` find the store as a
training does (tracking.uri, else MLFLOW_TRACKING_URI, else mlflow.db at the project
root), from the project's config and the overrides given. MLflow and torch are imported
once a command runs, never when `dlpipe` starts.
"""

import argparse
from pathlib import Path

from dlpipe.cli.args import add_command
from dlpipe.cli.project import client_and_config, conf_dir
from dlpipe.errors import ConfigError, DataError

# Probabilities and values in CSV: float32 holds about 7 significant digits.
_DIGITS = "%.6g"
_OVERRIDES_HELP = "config overrides, e.g. tracking.uri=<uri> or registry.metric=test/loss"


def add_commands(commands: argparse._SubParsersAction) -> None:
    """Add models, promote and predict to the `dlpipe` command's subcommands."""
    listed = add_command(commands, "models", models, "list the models to choose, with settings")
    listed.add_argument(
        "overrides", nargs="*", help="hydra.searchpath=[...] to list other config folders too"
    )
    listed.add_argument("--json", action="store_true", help="each model and setting, as JSON")
    promoted = add_command(
        commands, "promote", promote, "make a run's model the champion if it beats it"
    )
    promoted.add_argument("run_id", metavar="RUN", help="the id of an evaluated run")
    promoted.add_argument("overrides", nargs="*", help=_OVERRIDES_HELP)
    promoted.add_argument("--name", help="the registered model, if the run has versions of several")
    predicted = add_command(
        commands, "predict", predict, "predict from a table, .npz, image or folder"
    )
    predicted.add_argument(
        "model", metavar="MODEL", help="models:/NAME@ALIAS, models:/NAME/VERSION, RUN or FILE.ckpt"
    )
    predicted.add_argument(
        "input",
        metavar="INPUT",
        help="a CSV or Parquet table, an .npz (array x), an image or a folder",
    )
    predicted.add_argument("overrides", nargs="*", help=_OVERRIDES_HELP)
    predicted.add_argument("--output", metavar="FILE.csv", help="write here (default: stdout)")
    predicted.add_argument(
        "--run-file", metavar="RUN.json", help="a checkpoint's run record (default: beside it)"
    )
    predicted.add_argument(
        "--keep",
        metavar="COLUMN",
        action="append",
        default=[],
        help="copy this column of a table (or array of an .npz) into the output, before the "
        "predictions, e.g. an id; repeat for several",
    )


def models(args: argparse.Namespace) -> int:
    """List the models `model=<name>` chooses: each model/<name>.yaml of conf/ and of the
    folders on Hydra's search path (hydra.searchpath in conf/config.yaml, or given here),
    dlpipe's and the project's own alike, with its _target_ and its settings: type, value
    (the YAML's, else the builder's default) and range, read without importing torch."""
    import json  # here, not when `dlpipe --help` starts

    from dlpipe.config.compose import search_folders
    from dlpipe.models.catalog import list_models

    found = list_models(search_folders(args.overrides, conf_dir()))
    if args.json:
        print(json.dumps([_as_dict(model) for model in found], indent=2, default=str))
        return 0
    for model in found:
        print(f"{model.name}: {model.target or '(no _target_)'} ({_shown(model.file)})")
        if model.problem:
            print(f"  cannot read its settings: {model.problem}")
            continue
        rows = [("setting", "type", "value", "range")]
        rows += [(s.name, s.type, json.dumps(s.value), s.range) for s in model.settings]
        widths = [max(len(row[column]) for row in rows) for column in range(3)]
        for row in rows:
            line = "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False))
            print(f"  {line}  {row[3]}".rstrip())
    return 0


def _as_dict(model) -> dict:
    from dataclasses import asdict

    return {**asdict(model), "file": _shown(model.file)}


def _shown(path: Path) -> str:
    """`path` as a user types it: relative to the working directory when inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def promote(args: argparse.Namespace) -> int:
    """Make the model version registered from RUN the `champion` alias of its model if it
    beats the current champion on registry.metric (null: the metric the version was
    registered with, test/acc or test/rmse by task), and say what was compared."""
    from dlpipe.tracking import registry

    client, cfg = client_and_config(args.overrides)
    version = registry.version_of_run(client, args.run_id, args.name)
    metric = cfg.registry.metric or version.tags.get(registry.METRIC_TAG)
    if metric is None:
        raise ConfigError(
            f"{version.name} version {version.version} names no metric: set registry.metric"
        )
    print(registry.promote_version(client, version, metric))
    return 0


def predict(args: argparse.Namespace) -> int:
    """Predict with MODEL (models:/NAME@ALIAS, models:/NAME/VERSION, a run id, or a
    checkpoint with its models/run.json) for every sample of INPUT: a table with the
    training table's columns (or one column per value of an input, flattened), an .npz
    holding `x`, an image, or a folder of images. Inputs are preprocessed as in training,
    with the statistics that come with the model. Writes the class and each class's
    probability, or the predicted values, as CSV: to --output, or to stdout; each row
    after the input's --keep columns (or the image file it predicts)."""
    from dlpipe import files
    from dlpipe.errors import DlpipeError
    from dlpipe.serving.inputs import read_input
    from dlpipe.serving.loading import open_model
    from dlpipe.tracking.client import TrackingStoreError

    client, _ = client_and_config(args.overrides)
    settings, model_predict = open_model(args.model, client, args.run_file)
    source = Path(args.input)
    try:
        raw, carried = read_input(source, settings, list(dict.fromkeys(args.keep)))
        found = model_predict(raw)
    except DlpipeError as exc:
        raise DataError(f"input {source}: {exc}") from exc
    except TrackingStoreError as exc:
        raise DataError(
            f"input {source} does not fit the model's signature: {_schema_error(exc)}"
        ) from exc
    if carried is not None:
        _carry(carried, found)
    if not args.output:
        print(found.to_csv(index=False, float_format=_DIGITS), end="")
        return 0
    with files.atomic_path(Path(args.output)) as tmp:
        found.to_csv(tmp, index=False, float_format=_DIGITS)
    print(f"{len(found)} predictions written to {args.output}")
    return 0


def _carry(carried, found) -> None:
    """Put the columns `carried` from the input in front of the predictions `found`."""
    for position, name in enumerate(carried.columns):
        if name in found.columns:
            raise ConfigError(
                f"--keep {name}: the predictions have a column of that name: rename it"
            )
        found.insert(position, name, carried[name].to_numpy())


def _schema_error(exc: Exception) -> str:
    """What MLflow's schema check found, without the inputs it quotes before it."""
    return str(exc).rsplit("Error: ", 1)[-1].strip().splitlines()[0]
