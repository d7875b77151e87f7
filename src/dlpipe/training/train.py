"""The train stage: build data, model and task from the config, fit, checkpoint, track.

Outputs (fixed paths, see dlpipe.paths): models/best.ckpt, models/last.ckpt,
models/history.json and models/run.json, which names the MLflow run for evaluate.
Everything that can be checked is built before the MLflow run opens, so a bad setting
costs no run.
"""

import logging
import sys
import uuid
from dataclasses import dataclass

from omegaconf import DictConfig, OmegaConf

from dlpipe import files
from dlpipe.config import checks as config
from dlpipe.config import secrets
from dlpipe.config.schema.validate import validate
from dlpipe.data.arrays import ArrayLoader, Loader, PreparedData, in_fold, load_prepared
from dlpipe.data.shard_loader import ShardLoader, streaming
from dlpipe.errors import ConfigError, TrackingError
from dlpipe.models import registry
from dlpipe.paths import PREPARED_DIR, PROJECT, Outputs
from dlpipe.record import RunRecord
from dlpipe.tasks import configured, kinds
from dlpipe.tasks.kinds import Setup, TaskKind
from dlpipe.tracking import client as tracking
from dlpipe.tracking.lineage import lineage_tags
from dlpipe.tracking.sweep import SweepJob, child_tags
from dlpipe.training.refit import check_refit
from dlpipe.training.trainer import (
    best_epoch,
    early_stopping,
    fit_settings,
    quiet_lightning,
    seed_all,
    worker_threads,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainResult:
    run_id: str
    best_checkpoint: str
    best_score: float


@dataclass
class _Fit:
    """Everything a training needs, built and checked before its MLflow run opens."""

    data: PreparedData
    task: object
    train_loader: Loader
    val_loader: Loader
    logger: object
    trainer: object
    trial: object
    tags: dict[str, str]
    # The config with the metrics checkpointing and early stopping watch filled in.
    cfg: DictConfig


def train(cfg: DictConfig, out: Outputs = PROJECT, job: SweepJob | None = None) -> TrainResult:
    """Train the configured model on the prepared data as one MLflow run, writing under `out`.

    As a sweep's job, the run becomes a child of the sweep's parent run; a job whose
    settings fail before training still leaves a FAILED child run saying why. While
    another live process trains into `out`, this training is refused before its run opens.
    """
    try:
        fit = _set_up(cfg, out)
    except Exception as exc:
        if job:
            _record_failed_job(cfg, job, exc)
        raise
    from dlpipe.training import resume

    uri = tracking.resolve_uri(cfg.tracking.uri)
    client = tracking.get_client(uri, cfg.tracking.retry_seconds)
    # Taken once every setting has passed: a refused one leaves no models/ behind.
    with resume.holding(out):
        return _train_held(fit.cfg, fit, client, out, job)


def _train_held(
    cfg: DictConfig, fit: _Fit, client, out: Outputs, job: SweepJob | None
) -> TrainResult:
    """Train into the folder this process holds, continuing the run interrupted there or
    as a new run."""
    from dlpipe.training import resume

    resumed = _resumption(cfg, client, out, fit.tags)
    files.clear_partial(out.models)
    run_id = (
        resumed.run_id if resumed else _open_run(cfg, client, fit.tags, job, out, fit.data.meta)
    )
    where = secrets.mask_text(client.tracking_uri)
    log.info(f"MLflow run {run_id} in experiment '{cfg.tracking.experiment}' at {where}")
    with tracking.closing_run(client, run_id, stopped_early=_pruned_type(cfg, fit.trial)):
        score = _fit(cfg, fit, client, run_id, out, resumed)
        refit_epochs = _refit(cfg, fit, client, run_id, out)
        files.write_json(out.history_file, tracking.epoch_history(client, run_id))
        monitor = cfg.trainer.checkpoint_monitor
        refit_said = f" (refit on train+val for {refit_epochs} epochs)" if refit_epochs else ""
        log.info(f"best {monitor} {score:.4f} -> {out.best_ckpt}{refit_said}")
        # The score a sweep ranks its jobs by, and what an Optuna trial returns.
        tracking.log_metrics(client, run_id, {f"best/{monitor}": score})
        tracking.log_artifact(client, run_id, out.best_ckpt, "checkpoints")
        _run_record(cfg, fit.data.meta, run_id, score, out, refit_epochs).write(out.run_file)
    resume.clear_record(out)
    return TrainResult(run_id=run_id, best_checkpoint=str(out.best_ckpt), best_score=score)


def _open_run(
    cfg: DictConfig, client, tags: dict, job: SweepJob | None, out: Outputs, meta: dict
) -> str:
    """A new run holding the config and the data (`meta`) as its input, its id kept beside
    the checkpoints to come."""
    from dlpipe.training import resume

    sweep_tags = _sweep_tags(client, cfg, job) if job else {}
    # A record left by an interrupted run must never describe the checkpoints made next.
    for stale in (out.run_file, out.history_file):
        stale.unlink(missing_ok=True)
    # MLflow draws run names from `random`, which the seed has just fixed: every run
    # would get the same name.
    label = registry.label(config.to_dict(cfg.model))
    name = {"mlflow.runName": f"{label}-{cfg.data.name}-{uuid.uuid4().hex[:6]}"}
    run_id = tracking.open_run(client, cfg.tracking.experiment, {**name, **tags, **sweep_tags})
    resume.write_record(out, run_id, tags["dlpipe.config_hash"], tags["dlpipe.data_hash"])
    shown = secrets.mask(config.to_dict(cfg))
    tracking.log_params(client, run_id, config.flatten(shown))
    tracking.log_text(client, run_id, OmegaConf.to_yaml(shown), "config.yaml")
    tracking.log_data_input(client, run_id, meta, PREPARED_DIR)
    return run_id


def _resumption(cfg: DictConfig, client, out: Outputs, tags: dict):
    """The interrupted training to continue (resume=true), reopened; None to start anew."""
    from dlpipe.training import resume

    if not cfg.resume or cfg.cluster.name == "ray":
        return None
    found = resume.find(client, out, tags["dlpipe.config_hash"], tags["dlpipe.data_hash"])
    if found:
        tracking.reopen_run(client, found.run_id)
        log.info(
            f"resuming run {found.run_id} from {found.checkpoint} after epoch "
            f"{found.epochs_done} (resume=false starts anew)"
        )
    return found


def _fit(cfg: DictConfig, fit: _Fit, client, run_id: str, out: Outputs, resumed) -> float:
    """Train here (continuing `resumed`, if any) or on the Ray cluster; the best score."""
    if cfg.cluster.name == "ray":
        from dlpipe.cluster import ray_train

        return ray_train.fit(cfg, fit.task, fit.data, client, run_id, out)
    if resumed is None:
        fit.logger.attach(client, run_id)
        fit.trainer.fit(fit.task, fit.train_loader, fit.val_loader)
    else:
        # Epochs the run already holds are not logged twice.
        fit.logger.attach(client, run_id, tracking.last_steps(client, run_id))
        fit.trainer.fit(
            fit.task,
            fit.train_loader,
            fit.val_loader,
            ckpt_path=resumed.checkpoint,
            weights_only=True,
        )
    return _best_score(fit.trainer, cfg.trainer.checkpoint_monitor)


def _refit(cfg: DictConfig, fit: _Fit, client, run_id: str, out: Outputs) -> int | None:
    """With trainer.refit, replace best.ckpt by the model refit on train+val for the
    chosen epoch's number of epochs (see dlpipe.training.refit); how many, or None."""
    if not cfg.trainer.refit:
        return None
    from dlpipe.training import refit

    def build(refit_cfg: DictConfig, steps_per_epoch: int):
        model = build_model(refit_cfg, fit.data.meta)
        _transfer(refit_cfg, model)  # started as the training's model was
        return build_task(refit_cfg, fit.data.meta, model, steps_per_epoch)

    epochs = refit.refit(cfg, fit.data, build, out)
    client.set_tag(run_id, refit.TAG, str(epochs))
    return epochs


def _sweep_tags(client, cfg: DictConfig, job: SweepJob) -> dict[str, str]:
    return {**child_tags(client, cfg.tracking.experiment, job), **_search_tags(cfg)}


def _record_failed_job(cfg: DictConfig, job: SweepJob, exc: BaseException) -> None:
    """Leave a FAILED child run saying why a sweep's job failed before its training began."""
    try:
        uri = tracking.resolve_uri(cfg.tracking.uri)
        client = tracking.get_client(uri, cfg.tracking.retry_seconds)
    except TrackingError:
        return  # the store itself is what failed: there is nowhere to record it
    tracking.record_failure(client, cfg.tracking.experiment, _sweep_tags(client, cfg, job), exc)


def _set_up(cfg: DictConfig, out: Outputs) -> _Fit:
    from dlpipe.training.lightning_hooks import MlflowEpochLogger

    # Again here: train() is also called as a library function (tests, sweeps).
    validate(cfg)
    data = load_prepared(PREPARED_DIR, ("train", "val"), stream=("train", "val"))
    config.check_prepared_matches(cfg, data.meta)
    data = in_fold(data, OmegaConf.select(cfg, "data.split.fold"))
    config.check_batch_size(cfg, data.meta)
    kind = task_kind(cfg, data.meta)
    check_refit(cfg, kind)
    # null monitors are the task's own: from here on, every reader of the config (the
    # Trainer, Ray Train, an Optuna trial, the run's params and record) sees them named.
    cfg = config.watching(cfg, kind, data.meta.get("heads"))
    threads = _share_cpus()
    where = _reach_cluster(cfg, kind)
    seed_all(cfg.seed)
    train_loader, val_loader = loaders(cfg, data)
    model = build_model(cfg, data.meta)
    transfer_tags = _transfer(cfg, model)
    task = build_task(cfg, data.meta, model, len(train_loader), kind)
    logger = MlflowEpochLogger(echo=not sys.stderr.isatty(), max_epochs=cfg.trainer.max_epochs)
    trial, search_callbacks = _search_trial(cfg)
    trainer = (
        None
        if where
        else _local_trainer(
            cfg, kind, data.meta, logger, (train_loader, val_loader), out, search_callbacks
        )
    )
    tags = {
        **lineage_tags(config.config_hash(cfg), data.meta["hash"]),
        # Under Ray Train, the workers' threads (see ray_train), not the driver's.
        "dlpipe.torch_threads": str(worker_threads(cfg) if where else threads),
        **transfer_tags,
    }
    return _Fit(data, task, train_loader, val_loader, logger, trainer, trial, tags, cfg)


def _local_trainer(
    cfg: DictConfig, kind: TaskKind, meta: dict, logger, batches: tuple, out: Outputs, extra: tuple
):
    """The Trainer of a training in this process (on Ray, each worker builds its own: see
    ray_train), with what a resumed training needs to go on as an uninterrupted one would."""
    from dlpipe.training.augment import augmentation
    from dlpipe.training.resume import EpochOrder, RandomState, RunId
    from dlpipe.training.text_samples import text_samples

    train_loader, val_loader = batches
    callbacks = (
        EpochOrder(train_loader),
        RandomState(),
        RunId(),
        *augmentation(cfg, meta),
        *text_samples(meta, val_loader, cfg.seed),
        *extra,
    )
    return build_trainer(cfg, logger, len(train_loader), out, callbacks, kind, meta.get("heads"))


def _reach_cluster(cfg: DictConfig, kind: TaskKind) -> str | None:
    """With cluster=ray: join or start the cluster, before any run opens; say which."""
    if cfg.cluster.name != "ray":
        return None
    from dlpipe.cluster import connect as cluster
    from dlpipe.config.usercode import code_folders

    if _search_runner(cfg) == "hydra":
        raise ConfigError(
            "a search on the Hydra runner prunes trials in their own process: use "
            "cluster=local, or search.runner=ray for trials that train on Ray Train"
        )
    if not kind.distributed:
        label = registry.label(config.to_dict(cfg.model))
        raise ConfigError(f"model '{label}' trains in one process: use cluster=local")
    where = cluster.connect(
        cfg.cluster.address, cfg.cluster.connect_timeout, code_folders(cfg), trains=True
    )
    log.info(f"training on {where} with {cfg.cluster.num_workers} workers")
    return where


def _best_score(trainer, monitor: str) -> float:
    """The checkpointed epoch's `monitor`: the best one's, or the last one's when the
    checkpoint is simply the last epoch (a GAN)."""
    from dlpipe.training.lightning_hooks import BestEpoch

    best = next((c for c in trainer.callbacks if isinstance(c, BestEpoch)), None)
    if best is not None and best.best is not None:
        return best.score
    return float(trainer.callback_metrics[monitor])


def _search_trial(cfg: DictConfig) -> tuple[object, tuple]:
    """In an Optuna search: the job's trial and its pruning callback; on Ray Tune, no
    trial (Tune's scheduler stops it) and the callback that reports each epoch to Tune."""
    if _search_runner(cfg) is None:
        return None, ()
    from dlpipe.search import study as search

    if _search_runner(cfg) == "ray":
        from dlpipe.search.reporting import EpochToTune

        search.check_direction(search.loaded(cfg), cfg)
        return None, (EpochToTune(cfg.trainer.checkpoint_monitor),)
    trial = search.job_trial(cfg)
    search.check_direction(trial.study, cfg)
    return trial, (search.pruning_callback(trial, cfg.trainer.checkpoint_monitor),)


def _search_runner(cfg: DictConfig) -> str | None:
    """What runs the search this job is a trial of: hydra or ray; None outside a search."""
    if OmegaConf.select(cfg, "search.trial") is None:
        return None
    return OmegaConf.select(cfg, "search.runner", default="hydra")


def _search_tags(cfg: DictConfig) -> dict[str, str]:
    """In an Optuna search: the study and trial number the job's run belongs to."""
    trial = OmegaConf.select(cfg, "search.trial")
    return {} if trial is None else {"optuna.study": cfg.search.study, "optuna.trial": str(trial)}


def _pruned_type(cfg: DictConfig, trial) -> tuple[type, ...]:
    """What a search trial's training raises when it is stopped early: Optuna's TrialPruned,
    or, on Ray Tune, the SystemExit with which Tune ends a trial its scheduler stopped."""
    if _search_runner(cfg) == "ray":
        return (SystemExit,)
    if trial is None:
        return ()
    import optuna

    return (optuna.TrialPruned,)


def _share_cpus() -> int:
    """Run torch with as many threads as CPUs Ray gave this job, when Ray launched it.

    Parallel jobs that each took every core would fight over them instead of sharing.
    """
    import torch

    if "ray" in sys.modules:
        import ray

        if ray.is_initialized():
            cpus = ray.get_runtime_context().get_assigned_resources().get("CPU")
            if cpus:
                torch.set_num_threads(max(1, int(cpus)))
    return torch.get_num_threads()


def build_model(cfg: DictConfig, meta: dict):
    """The configured model, shaped for the prepared data."""
    from dlpipe.models.multitask import build_for_data

    return build_for_data(
        config.to_dict(cfg.model),
        meta["input_shape"],
        meta["num_outputs"],
        meta.get("heads"),
        cfg.multitask.shared,
        vocab_size(meta),
        meta.get("task") == registry.TOKEN_CLASSIFICATION,
    )


def vocab_size(meta: dict) -> int | None:
    """The size of text data's vocabulary; None: the data is not token ids."""
    return meta["text"]["vocab_size"] if meta.get("text") else None


def task_of(cfg: DictConfig, meta: dict) -> str:
    """What the training learns: the model's own task (reconstruction) or the data's."""
    return registry.model_task(config.to_dict(cfg.model), meta["task"])


def _transfer(cfg: DictConfig, model) -> dict[str, str]:
    """Start `model` from transfer.source, when set; return the tags recording it."""
    source = OmegaConf.select(cfg, "transfer.source")
    if source is None:
        return {}
    from dlpipe.training.transfer import transfer

    uri = tracking.resolve_uri(cfg.tracking.uri)
    return transfer(model, str(source), cfg.transfer.freeze, uri)


def task_kind(cfg: DictConfig, meta: dict) -> TaskKind:
    """The descriptor of what the training learns: the config's task (a user's), else
    dlpipe's own for the model's or the data's task."""
    return configured.resolve(config.to_dict(cfg).get("task"), task_of(cfg, meta))


def build_task(
    cfg: DictConfig, meta: dict, model, steps_per_epoch: int, kind: TaskKind | None = None
):
    """The LightningModule fitting `model` for the task (`kind`, found from the config when
    not given); its optimiser and schedule settings are tried first."""
    from dlpipe.training.optim import build_optimizer, build_schedule

    optim = config.to_dict(cfg.optim)
    schedule = {
        **config.to_dict(cfg.schedule),
        "steps_per_epoch": steps_per_epoch,
        "max_epochs": cfg.trainer.max_epochs,
    }
    build_schedule(build_optimizer(model.parameters(), **optim), **schedule)
    setup = Setup(
        model=model,
        label=registry.label(config.to_dict(cfg.model)),
        meta=meta,
        optim=optim,
        schedule=schedule,
        weights=config.head_weights(cfg, meta.get("heads")),
    )
    return (kind or task_kind(cfg, meta)).lightning_module(setup)


def loaders(cfg: DictConfig, data: PreparedData) -> tuple[Loader, Loader]:
    """Training batches (shuffled per epoch from the seed) and validation batches: from
    memory, or streamed from the shards of data prepared in them."""
    batch = cfg.data.batch_size
    if data.streamed("train"):
        stream = streaming(cfg.data)
        return (
            ShardLoader(data.folder, data.meta, ("train",), batch, stream, True, cfg.seed),
            ShardLoader(data.folder, data.meta, ("val",), batch, stream),
        )
    (x_train, y_train), (x_val, y_val) = data.splits["train"], data.splits["val"]
    return (
        ArrayLoader(x_train, y_train, batch, shuffle=True, seed=cfg.seed),
        ArrayLoader(x_val, y_val, batch),
    )


def build_trainer(
    cfg: DictConfig,
    logger,
    steps_per_epoch: int,
    out: Outputs,
    extra_callbacks: tuple = (),
    task: str | TaskKind = "classification",
    heads: list[dict] | None = None,
):
    """The Lightning Trainer a dlpipe training of `task` (on data with `heads`) runs with,
    watching the task's own metrics where the config's monitors are null; settings it
    refuses are config errors."""
    import lightning.pytorch as pl
    from lightning.fabric.utilities.exceptions import MisconfigurationException

    from dlpipe.training.lightning_hooks import (
        EpochEcho,
        EpochProgressBar,
        ParameterCount,
        ReadersStopped,
    )
    from dlpipe.training.resume import AtomicCheckpointIO

    quiet_lightning()
    t = config.watching(cfg, task, heads).trainer
    # Without a terminal, the logger writes a line per epoch instead (see lightning_hooks).
    bar = [EpochProgressBar()] if sys.stderr.isatty() else []
    try:
        return pl.Trainer(
            **fit_settings(t, steps_per_epoch),
            accelerator=t.accelerator,
            devices=t.devices,
            logger=logger,
            callbacks=[
                *_callbacks(t, out, task),
                *extra_callbacks,
                ParameterCount(),
                *bar,
                EpochEcho(),
                ReadersStopped(),
            ],
            plugins=[AtomicCheckpointIO()],
            enable_progress_bar=bool(bar),
            # Lightning's table of the model's layers, printed again by every job of a
            # sweep: ParameterCount says the model's size in one line instead.
            enable_model_summary=False,
            default_root_dir=out.models,
        )
    except (MisconfigurationException, ValueError, TypeError) as exc:
        raise ConfigError(f"trainer settings refused: {tracking.one_line(exc)}") from exc


def _callbacks(t: DictConfig, out: Outputs, task: str | TaskKind) -> list:
    """Checkpointing of the best epoch (see BestEpoch), and early stopping; a task that
    does not keep its best epoch (a GAN, whose losses say little about its samples and do
    not settle) keeps its last one as best.ckpt and trains all its epochs."""
    from lightning.pytorch.callbacks import ModelCheckpoint

    from dlpipe.training.lightning_hooks import RANK

    keeps_best = kinds.kind(task).keeps_best
    checkpoint = ModelCheckpoint(
        dirpath=out.models,
        filename="best",
        monitor=RANK if keeps_best else None,
        mode="max",
        save_last=True,
        enable_version_counter=False,
    )
    if not keeps_best:
        return [checkpoint]
    return [best_epoch(t), checkpoint, *early_stopping(t)]


def _run_record(
    cfg: DictConfig, meta: dict, run_id: str, score: float, out: Outputs, refit_epochs: int | None
) -> RunRecord:
    """What evaluate (and later tools) need to find the run and rebuild the model: they
    take the data, model, task and registered name from here, not from the config."""
    from dlpipe.tracking.champion import registered_name

    data = config.to_dict(cfg.data)
    return RunRecord(
        run_id=run_id,
        experiment=cfg.tracking.experiment,
        data=data,
        registry_name=registered_name(cfg.registry.name, data),
        model=config.to_dict(cfg.model),
        task=task_of(cfg, meta),
        # A user's task (its `_target_` and settings): evaluate builds it again.
        task_config=config.to_dict(cfg).get("task"),
        input_shape=meta["input_shape"],
        num_outputs=meta["num_outputs"],
        classes=meta["classes"],
        heads=meta.get("heads"),
        shared=cfg.multitask.shared,
        vocab_size=vocab_size(meta),
        data_hash=meta["hash"],
        best_checkpoint=str(out.best_ckpt),
        best_checkpoint_sha256=files.sha256(out.best_ckpt),
        monitor=cfg.trainer.checkpoint_monitor,
        best_score=score,
        refit_epochs=refit_epochs,
    )
