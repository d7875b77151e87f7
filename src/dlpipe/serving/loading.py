"""The model `dlpipe predict` names: a registered version (`models:/name@alias`,
`models:/name/version`), the model an evaluated run logged (its run id), or a checkpoint
file with the models/run.json of its training.

Registered and logged models load through MLflow's pyfunc flavour, so inputs meet their
signature as any MLflow client's would; a checkpoint is served with the statistics of
data/prepared/, which must be the data it was trained on.
"""

import re
from collections.abc import Callable
from pathlib import Path

from dlpipe.errors import DataError, TrackingError
from dlpipe.record import RunRecord
from dlpipe.tracking import client as tracking
from dlpipe.tracking.client import Client, TrackingStoreError

_RUN_ID = re.compile(r"^[0-9a-f]{32}$")
_REGISTERED = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/@]+)|/(?P<version>\d+))$")
_FORMS = "models:/<name>@<alias>, models:/<name>/<version>, a run id or a checkpoint file"

Predict = Callable[..., object]


def open_model(reference: str, client: Client, run_file: str | None) -> tuple[dict, Predict]:
    """The serving settings of the model `reference` names, and its predict function.

    Raises:
        DlpipeError: no such model, alias, version or run, or a checkpoint without its run
            record, naming what is missing.
    """
    if reference.startswith("models:/"):
        return _pyfunc(client, _check_registered(client, reference))
    path = Path(reference)
    if _RUN_ID.match(reference) and not path.exists():
        return _pyfunc(client, _logged_by_run(client, reference))
    if path.is_file():
        return _checkpoint(path, Path(run_file) if run_file else path.parent / "run.json")
    raise DataError(f"MODEL {reference} is none of {_FORMS}")


def _check_registered(client: Client, uri: str) -> str:
    """`uri` itself, once its model and alias or version are known to the registry."""
    found = _REGISTERED.match(uri)
    if not found:
        raise DataError(f"MODEL {uri} is none of {_FORMS}")
    name, alias, version = found["name"], found["alias"], found["version"]
    try:
        model = client.get_registered_model(name)
    except TrackingStoreError as exc:
        known = ", ".join(sorted(m.name for m in client.search_registered_models())) or "none"
        raise TrackingError(
            f"no registered model '{name}' in {client.tracking_uri} (models there: {known})"
        ) from exc
    if alias and alias not in model.aliases:
        aliases = ", ".join(sorted(model.aliases)) or "none"
        raise TrackingError(f"model '{name}' has no alias '{alias}' (its aliases: {aliases})")
    if version:
        try:
            client.get_model_version(name, version)
        except TrackingStoreError as exc:
            raise TrackingError(f"model '{name}' has no version {version}") from exc
    return uri


def _logged_by_run(client: Client, run_id: str) -> str:
    """The URI of the model run `run_id` logged last (the evaluate stage logs it)."""
    try:
        run = client.get_run(run_id)
    except TrackingStoreError as exc:
        raise TrackingError(
            f"run {run_id} is not in tracking store {client.tracking_uri}: `dlpipe runs` lists "
            "the runs there"
        ) from exc
    logged = run.outputs.model_outputs if run.outputs else []
    if not logged:
        raise TrackingError(
            f"run {run_id} has no logged model: evaluate it first (`python pipelines/evaluate.py`)"
        )
    return f"models:/{logged[-1].model_id}"


def _pyfunc(client: Client, uri: str) -> tuple[dict, Predict]:
    try:
        model = tracking.load_model(client, uri)
    except TrackingStoreError as exc:
        raise TrackingError(f"model {uri} cannot be loaded: {tracking.one_line(exc)}") from exc
    return model.unwrap_python_model().predictor.settings, model.predict


def _checkpoint(path: Path, run_file: Path) -> tuple[dict, Predict]:
    from dlpipe.data.arrays import load_prepared
    from dlpipe.paths import PREPARED_DIR
    from dlpipe.serving.predictor import Predictor

    if not run_file.is_file():
        raise DataError(
            f"no run record {run_file} for checkpoint {path}: give the models/run.json of "
            "its training with --run-file"
        )
    record = RunRecord.read(run_file, f"give the models/run.json that trained {path} (--run-file)")
    meta = load_prepared(PREPARED_DIR, ()).meta
    predictor = Predictor.from_checkpoint(path, record, meta)
    return predictor.settings, predictor.predict
