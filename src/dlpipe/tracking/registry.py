"""The model registry: every evaluated model logged to its training's run as an MLflow
pyfunc model, registered as a version of a named model, and the `champion` alias moved to
a version when it beats the one holding it.

Versions are compared on a test metric of their runs: registry.metric, or the one each
version was tagged with when registered (its task's own: test/acc, test/rmse, ...), with
which way it is better (its task's word, tagged too; else the metric's name). Only
versions of one task taking the same inputs and answering the same outputs are compared:
each version is tagged with its task and digests of its signature's inputs and outputs
(read from its logged model for a version registered without them).
"""

import hashlib
import json
import logging
import tempfile
from pathlib import Path

import torch
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

from dlpipe import __version__
from dlpipe.config import usercode
from dlpipe.errors import ConfigError, TrackingError
from dlpipe.record import RunRecord
from dlpipe.serving import text, transform
from dlpipe.serving.predictor import Predictor
from dlpipe.serving.settings import describe
from dlpipe.tasks.kinds import builtin
from dlpipe.tracking import champion
from dlpipe.tracking import client as tracking

log = logging.getLogger(__name__)
CHAMPION = "champion"
METRIC_TAG, MODE_TAG = "dlpipe.metric", "dlpipe.metric_mode"
# What a version is, tagged when it is registered: versions differing in any of these
# are never compared, as a champion is what its users call with the same inputs.
TASK_TAG, INPUTS_TAG, OUTPUTS_TAG = "dlpipe.task", "dlpipe.inputs", "dlpipe.outputs"
IDENTITY_TAGS = {TASK_TAG: "task", INPUTS_TAG: "inputs", OUTPUTS_TAG: "outputs"}
# MLflow runs this file to load the model (models from code: nothing pickled).
_MODEL_CODE = Path(__file__).parents[1] / "serving" / "pyfunc_model.py"
_EXAMPLE_ROWS = 2


def servable(network: torch.nn.Module, record: RunRecord, meta: dict) -> Predictor:
    """The trained `network` with its serving settings, for a model of a task that makes
    predictions (its TaskKind's `servable`: not generative models, autoencoders).

    Args:
        network: the model as models/run.json (`record`) describes it, with its weights.
        meta: the prepared data's meta.json, which holds the training's statistics.
    """
    return Predictor(network, describe(record, meta))


def publish(
    client: MlflowClient,
    predictor: Predictor,
    x_test: torch.Tensor,
    name: str | None,
    criterion: champion.Criterion | None = None,
    promote: bool = True,
) -> None:
    """Log `predictor` as the pyfunc model of its training run, with a signature and an
    input example made from the first test samples; with a registry `name`, register it
    as a version of that model, tagged with the metric it is judged by and which way it is
    better (`criterion`, null: dlpipe's task's own) and what it is, and with `promote` make
    it the champion if it beats the current one. Each step is logged.
    """
    run_id = predictor.settings["run_id"]
    version = _log(client, predictor, x_test, name)
    if name is None:
        log.info(f"model logged to run {run_id}; not registered (registry.name is null)")
        return
    served = predictor.settings
    criterion = criterion or champion.judged(builtin(served["task"]), served["heads"])
    tags = {
        METRIC_TAG: criterion.metric,
        MODE_TAG: criterion.mode,
        **_identity_from_model(client, name, version, served["task"]),
    }
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, value)
    log.info(f"registered {name} version {version} (run {run_id})")
    if promote:
        registered = client.get_model_version(name, version)
        log.info(promote_version(client, registered, criterion.metric))


def _log(client: MlflowClient, predictor: Predictor, x_test: torch.Tensor, name: str | None):
    """Log the model into its run (registered as `name` when given); its version or None."""
    import mlflow
    import mlflow.pyfunc
    from mlflow.models import Model, infer_signature

    example = transform.raw_inputs(predictor.settings, x_test[:_EXAMPLE_ROWS])
    # A language model's generation settings are params of each call.
    params = text.DEFAULTS if predictor.settings["task"] == "language_model" else None
    signature = infer_signature(example, predictor.predict(example, params), params)
    # Model.log reads the global tracking URI: the client's, never MLflow's own default.
    mlflow.set_tracking_uri(client.tracking_uri)
    run = client.get_run(predictor.settings["run_id"])
    # Made here, in the run's experiment: Model.log would file it under MLflow's default
    # experiment, whose runs table (the Models column) is not the run's.
    logged = client.create_logged_model(
        run.info.experiment_id, "model", run.info.run_id, params=run.data.params
    )
    with tempfile.TemporaryDirectory() as folder:
        info = Model.log(
            artifact_path=None,
            name="model",
            flavor=mlflow.pyfunc,
            run_id=run.info.run_id,
            model_id=logged.model_id,
            python_model=str(_MODEL_CODE),
            artifacts=predictor.save(Path(folder)),
            signature=signature,
            input_example=example,
            registered_model_name=name,
            # A user's own model (task, data source) travels with it: loading it needs no
            # project folder on the path.
            code_paths=[str(path) for path in usercode.code_folders(predictor.settings)] or None,
            # Given, so that MLflow does not load the model in a subprocess to infer them.
            pip_requirements=[
                f"dlpipe=={__version__}",
                f"mlflow=={mlflow.__version__}",
                f"torch=={torch.__version__}",
            ],
        )
    return info.registered_model_version


def promote_version(client: MlflowClient, version: ModelVersion, metric: str) -> str:
    """Point the champion alias at `version` if it beats the current champion on `metric`
    (or there is none); say what was compared and what was done. Which way is better: as
    `version` was tagged when registered on `metric`, else as the metric's name says."""
    name, new = version.name, run_metric(client, version, metric)
    current = champion_of(client, name)
    this = f"{name} version {version.version} (run {version.run_id})"
    if current is None:
        client.set_registered_model_alias(name, CHAMPION, version.version)
        return f"promoted {this} to {CHAMPION}: there was none ({metric} {new:.4f})"
    if current.version == version.version:
        return f"{this} is the {CHAMPION} already ({metric} {new:.4f})"
    differs = _difference(client, version, current)
    if differs:
        return (
            f"{name} version {current.version} (run {current.run_id}) stays {CHAMPION}, not "
            f"compared with version {version.version} (run {version.run_id}): {differs}; "
            "register that model under a name of its own (registry.name)"
        )
    old = run_metric(client, current, metric)
    criterion = _criterion(version, metric)
    way = criterion.way
    if criterion.beats(new, old):
        client.set_registered_model_alias(name, CHAMPION, version.version)
        return (
            f"promoted {this} to {CHAMPION}: {metric} {new:.4f} against {old:.4f} of version "
            f"{current.version} (run {current.run_id}); {way} is better"
        )
    return (
        f"{name} version {current.version} (run {current.run_id}) stays {CHAMPION}: "
        f"{metric} {old:.4f} against {new:.4f} of version {version.version} "
        f"(run {version.run_id}); {way} is better"
    )


def _criterion(version: ModelVersion, metric: str) -> champion.Criterion:
    """`metric` with which way is better: as its task said when `version` was registered on
    it (a task of the user's may name a metric whose name says neither), else by its name."""
    mode = version.tags.get(MODE_TAG) if version.tags.get(METRIC_TAG) == metric else None
    return champion.Criterion(metric, mode) if mode in ("min", "max") else champion.by_name(metric)


def _difference(client: MlflowClient, version: ModelVersion, current: ModelVersion) -> str:
    """How `version` differs from the champion `current` in task, inputs or outputs; empty
    when they are versions of one model that can be compared."""
    new, old = _identity(client, version), _identity(client, current)
    for tag, kind in IDENTITY_TAGS.items():
        if new[tag] == old[tag]:
            continue
        if tag == TASK_TAG:
            return f"it is a {new[tag]} model, the {CHAMPION} a {old[tag]} one"
        return (
            f"its {kind} differ from the {CHAMPION}'s (signature {kind} {new[tag][:12]} "
            f"against {old[tag][:12]})"
        )
    return ""


def _identity(client: MlflowClient, version: ModelVersion) -> dict[str, str]:
    """The task and signature digests `version` was tagged with when registered; for a
    version registered without them, read from its logged model."""
    if all(tag in version.tags for tag in IDENTITY_TAGS):
        return {tag: version.tags[tag] for tag in IDENTITY_TAGS}
    import mlflow.artifacts

    uri = f"models:/{version.name}/{version.version}/artifacts/settings.json"
    try:
        _use_store(client)
        task = json.loads(mlflow.artifacts.load_text(uri))["task"]
        return _identity_from_model(client, version.name, version.version, task)
    except (MlflowException, OSError, ValueError, KeyError, AttributeError) as exc:
        raise TrackingError(
            f"{version.name} version {version.version} (run {version.run_id}): its logged "
            f"model cannot be read to tell its task and signature ({tracking.one_line(exc)})"
        ) from exc


def _identity_from_model(client: MlflowClient, name: str, version: str, task: str) -> dict:
    """`task`, and the digests of the input and output schemas of the version's signature."""
    import mlflow.models

    _use_store(client)
    signature = mlflow.models.get_model_info(f"models:/{name}/{version}").signature
    schemas = {INPUTS_TAG: signature.inputs, OUTPUTS_TAG: signature.outputs}
    return {TASK_TAG: task, **{tag: _digest(schema) for tag, schema in schemas.items()}}


def _digest(schema) -> str:
    """A schema's SHA-256 over its canonical JSON: equal for equal columns, types, shapes."""
    canonical = json.dumps(schema.to_dict() if schema else None, sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _use_store(client: MlflowClient) -> None:
    """MLflow's module-level functions read the global tracking URI: make it the client's."""
    import mlflow

    mlflow.set_tracking_uri(client.tracking_uri)


def champion_of(client: MlflowClient, name: str) -> ModelVersion | None:
    version = client.get_registered_model(name).aliases.get(CHAMPION)
    return None if version is None else client.get_model_version(name, version)


def run_metric(client: MlflowClient, version: ModelVersion, metric: str) -> float:
    """The value of `metric` in the run that `version` came from."""
    metrics = client.get_run(version.run_id).data.metrics
    if metric not in metrics:
        tests = ", ".join(sorted(key for key in metrics if key.startswith("test/"))) or "none"
        raise ConfigError(
            f"run {version.run_id} ({version.name} version {version.version}) has no metric "
            f"{metric} (its test metrics: {tests}): set registry.metric to one it has"
        )
    return metrics[metric]


def version_of_run(client: MlflowClient, run_id: str, name: str | None = None) -> ModelVersion:
    """The latest registered version made from run `run_id` (of model `name`, if given)."""
    try:
        client.get_run(run_id)
    except MlflowException as exc:
        raise TrackingError(
            f"run {run_id} is not in tracking store {client.tracking_uri}: `dlpipe runs` lists "
            "the runs there"
        ) from exc
    versions = client.search_model_versions(f"run_id = '{run_id}'")
    versions = [version for version in versions if name in (None, version.name)]
    if not versions:
        of = f" of model '{name}'" if name else ""
        raise TrackingError(
            f"run {run_id} has no registered model version{of}: evaluate it with registry.name "
            "set (`python pipelines/evaluate.py`)"
        )
    names = sorted({version.name for version in versions})
    if len(names) > 1:
        raise TrackingError(
            f"run {run_id} has versions of several models ({', '.join(names)}): name one with "
            "--name"
        )
    return max(versions, key=lambda version: int(version.version))
