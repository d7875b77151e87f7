"""Training under Ray Train: the same task, data and settings on `cluster.num_workers` workers.

This process (the driver) owns the MLflow run: it opens the run with its params before
the workers start and closes it after they end. Worker 0 logs each epoch's metrics into
that run. Every epoch ends with a checkpoint reported to Ray; when a worker dies and
cluster.max_failures allows, Ray restarts the workers, which resume from the latest
checkpoint while worker 0 skips what the run already holds, so no epoch is logged twice.
The best and the last checkpoints land in models/ as a local training leaves them.

Prepared arrays reach the workers through Ray's object store, never by reading the
driver's disk: on several nodes only the driver needs data/prepared. Data prepared in
shards is read by the workers themselves, through Ray Data (see ray_data).
"""

import logging
import os
import shutil
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from dlpipe import files
from dlpipe.cluster.ray_data import RayShardLoader, check_room_to_read, data_config, datasets
from dlpipe.config import checks as config
from dlpipe.data.arrays import ArrayLoader, PreparedData
from dlpipe.data.shard_loader import streaming
from dlpipe.errors import DlpipeError, TrainingError
from dlpipe.paths import PREPARED_DIR, Outputs
from dlpipe.tracking import client as tracking
from dlpipe.training.augment import augmentation
from dlpipe.training.resume import EpochOrder, RandomState
from dlpipe.training.trainer import (
    best_epoch,
    early_stopping,
    fit_settings,
    quiet_lightning,
    seed_all,
    worker_threads,
)

log = logging.getLogger(__name__)
_CHECKPOINT = "checkpoint.ckpt"  # RayTrainReportCallback's file name in a checkpoint


def scaling_config(cluster: DictConfig):
    """Workers, where they go, and what each reserves: its CPUs and, with use_gpu, one GPU.
    With cluster.min_workers the group is elastic: it restarts on what is left of the
    cluster after losing a node, rather than waiting for the node to return."""
    from ray.train import ScalingConfig

    resources = dict(config.to_dict(cluster.resources_per_worker))
    if cluster.use_gpu:
        resources.setdefault("GPU", 1)
    workers = cluster.num_workers
    if cluster.min_workers is not None and cluster.min_workers < workers:
        workers = (cluster.min_workers, workers)
    return ScalingConfig(
        num_workers=workers,
        use_gpu=cluster.use_gpu,
        resources_per_worker=resources,
        placement_strategy=cluster.placement_strategy,
    )


def trainer_settings(cfg: DictConfig, steps_per_epoch: int) -> dict:
    """The Lightning Trainer settings of a worker, from conf/trainer (strategy aside)."""
    return {
        **fit_settings(cfg.trainer, steps_per_epoch),
        "accelerator": "gpu" if cfg.cluster.use_gpu else "cpu",
        "devices": "auto",
        "enable_checkpointing": False,  # Ray keeps the checkpoints
        "enable_progress_bar": False,
        "enable_model_summary": False,
    }


def fit(cfg: DictConfig, task, data: PreparedData, client, run_id: str, out: Outputs) -> float:
    """Train `task` on the cluster; write models/best.ckpt and last.ckpt; return the best
    score of trainer.checkpoint_monitor."""
    from ray.train import CheckpointConfig, FailureConfig, RunConfig
    from ray.train.torch import TorchTrainer

    # Each report waits for the controller's next poll (every 2 s by default): with short
    # epochs that wait, not training, would set the pace.
    os.environ.setdefault("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "0.2")
    cluster = cfg.cluster
    from dlpipe.training.lightning_hooks import RANK

    monitor = cfg.trainer.checkpoint_monitor
    trainer = TorchTrainer(
        _work,
        train_loop_config={
            "cfg": config.to_dict(cfg),
            "task": task,
            **_data(data),
            "run_id": run_id,
            "tracking_uri": client.tracking_uri,
        },
        **_datasets(cfg, data),
        scaling_config=scaling_config(cluster),
        run_config=RunConfig(
            name=run_id,  # a fresh name: Ray resumes a run whose name it has seen
            storage_path=cluster.storage_path,
            failure_config=FailureConfig(max_failures=cluster.max_failures),
            callbacks=_search_reporting(cfg),
            checkpoint_config=CheckpointConfig(
                # Ranked by BestEpoch: the monitor, ties decided by the tiebreak.
                num_to_keep=1,
                checkpoint_score_attribute=RANK,
                checkpoint_score_order="max",
            ),
        ),
    )
    result = _run(trainer, cluster.max_failures)
    best, metrics = max(result.best_checkpoints, key=lambda pair: pair[1][RANK])
    _copy(best, out.best_ckpt)
    _copy(result.checkpoint, out.last_ckpt)
    if "://" not in str(result.path):  # checkpoints on this machine: copied, so drop them
        shutil.rmtree(result.path, ignore_errors=True)
    return float(metrics[monitor])


def _search_reporting(cfg: DictConfig) -> list:
    """As a trial of a search on Ray Tune: the callback that reports each epoch to Tune."""
    if OmegaConf.select(cfg, "search.trial") is None:
        return []
    from dlpipe.search.reporting import WorkersToTune

    return [WorkersToTune(cfg.trainer.checkpoint_monitor)]


def _data(data: PreparedData) -> dict:
    """What the workers read the data from: its meta.json, and the arrays put in the object
    store once; data prepared in shards comes through Ray Data instead (see _datasets)."""
    import ray

    if data.streamed("train"):
        return {"meta": data.meta}
    arrays = {"train": ray.put(data.splits["train"]), "val": ray.put(data.splits["val"])}
    return {"meta": data.meta, **arrays, **_tokeniser(data.meta)}


def _tokeniser(meta: dict) -> dict:
    """Text data's tokeniser as its JSON, for the workers' samples: a worker on another
    host has no prepared data of its own."""
    if not meta.get("text"):
        return {}
    return {"tokeniser": (PREPARED_DIR / meta["text"]["file"]).read_text(encoding="utf-8")}


def _datasets(cfg: DictConfig, data: PreparedData) -> dict:
    """TorchTrainer's Ray Datasets, for data prepared in shards."""
    if not data.streamed("train"):
        return {}
    check_room_to_read(cfg.cluster)
    return {"datasets": datasets(data.folder, data.meta), "dataset_config": data_config()}


def _loaders(loop: dict, cfg: DictConfig, rank: int, workers: int) -> tuple:
    """A worker's training loader (its part of each epoch) and validation loader."""
    import ray

    batch = cfg.data.batch_size
    if "train" not in loop:  # in shards
        context = (rank, workers, streaming(cfg.data)[1])
        return (
            RayShardLoader("train", loop["meta"], batch, context, seed=cfg.seed),
            RayShardLoader("val", loop["meta"], batch, context),
        )
    (x_train, y_train), (x_val, y_val) = ray.get(loop["train"]), ray.get(loop["val"])
    return (
        ArrayLoader(x_train, y_train, batch, shuffle=True, seed=cfg.seed, shard=(rank, workers)),
        ArrayLoader(x_val, y_val, batch),
    )


def _run(trainer, max_failures: int):
    """trainer.fit(), its failure said in one line: a worker's own error when it had one."""
    from ray.train import TrainingFailedError

    try:
        return trainer.fit()
    except TrainingFailedError as exc:
        # A worker's own exception, unwrapped from Ray's task error when it is one.
        failures = {
            rank: getattr(error, "cause", None) or error
            for rank, error in (getattr(exc, "worker_failures", None) or {}).items()
        }
        for error in failures.values():
            if isinstance(error, DlpipeError):
                raise error from exc
        said = "; ".join(f"worker {rank}: {tracking.one_line(e)}" for rank, e in failures.items())
        raise TrainingError(
            f"Ray Train failed after {max_failures} restart(s) (cluster.max_failures): "
            f"{said or tracking.one_line(exc)}"
        ) from exc


def _copy(checkpoint, target: Path) -> None:
    with checkpoint.as_directory() as folder, files.atomic_path(target) as tmp:
        shutil.copyfile(Path(folder) / _CHECKPOINT, tmp)


def _work(loop: dict) -> None:
    """One worker: fit the task on its shard of each epoch, resuming from Ray's latest
    checkpoint after a restart."""
    import lightning.pytorch as pl
    import ray
    import ray.train
    from ray.train.lightning import (
        RayDDPStrategy,
        RayLightningEnvironment,
        RayTrainReportCallback,
        prepare_trainer,
    )

    from dlpipe.training.lightning_hooks import EpochEcho
    from dlpipe.training.text_samples import text_samples

    cfg = OmegaConf.create(loop["cfg"])
    context = ray.train.get_context()
    rank, workers = context.get_world_rank(), context.get_world_size()
    _record_placement(loop, cfg, rank, workers)
    torch.set_num_threads(worker_threads(cfg))
    seed_all(cfg.seed)
    quiet_lightning()
    train_loader, val_loader = _loaders(loop, cfg, rank, workers)
    resumed = ray.train.get_checkpoint()
    trainer = prepare_trainer(
        pl.Trainer(
            **trainer_settings(cfg, len(train_loader)),
            strategy=RayDDPStrategy(),
            plugins=[RayLightningEnvironment()],
            callbacks=[
                EpochOrder(train_loader),
                RandomState(),
                *augmentation(cfg, loop["meta"]),
                *text_samples(loop["meta"], val_loader, cfg.seed, loop.get("tokeniser")),
                best_epoch(cfg.trainer),
                *early_stopping(cfg.trainer),
                RayTrainReportCallback(),
                EpochEcho(),  # once the checkpoint is reported
            ],
            logger=_run_logger(loop, cfg, resumed is not None) if rank == 0 else False,
        )
    )
    if resumed is None:
        trainer.fit(loop["task"], train_loader, val_loader)
        return
    with resumed.as_directory() as folder:
        log.info(f"worker {rank} resumes from {folder}")
        trainer.fit(loop["task"], train_loader, val_loader, ckpt_path=Path(folder) / _CHECKPOINT)


def _record_placement(loop: dict, cfg: DictConfig, rank: int, workers: int) -> None:
    """Tag the run with the node this worker runs on (tag ray.worker.<rank>: its address
    and Ray node id), so the run says which hosts trained it; worker 0 drops the tags of
    workers an elastic restart left out."""
    import ray

    node = f"{ray.util.get_node_ip_address()} {ray.get_runtime_context().get_node_id()}"
    log.info(f"worker {rank} of the run is on node {node}")
    client = tracking.get_client(loop["tracking_uri"], cfg.tracking.retry_seconds)
    client.set_tag(loop["run_id"], f"ray.worker.{rank}", node)
    if rank == 0:
        for key in client.get_run(loop["run_id"]).data.tags:
            if key.startswith("ray.worker.") and int(key.rsplit(".", 1)[1]) >= workers:
                client.delete_tag(loop["run_id"], key)


def _run_logger(loop: dict, cfg: DictConfig, resumed: bool):
    """Worker 0's logger into the driver's run; after a restart it leaves out the epochs
    the run already holds."""
    from dlpipe.training.lightning_hooks import MlflowEpochLogger

    logger = MlflowEpochLogger(echo=True, max_epochs=cfg.trainer.max_epochs)
    client = tracking.get_client(loop["tracking_uri"], cfg.tracking.retry_seconds)
    logged = tracking.last_steps(client, loop["run_id"]) if resumed else {}
    logger.attach(client, loop["run_id"], logged)
    return logger
