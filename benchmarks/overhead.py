"""Training throughput of dlpipe against a hand-written loop and the common template setup.

    python benchmarks/overhead.py              # MLP and CNN on digits, 4 interleaved rounds
    python benchmarks/overhead.py --rounds 1   # quicker, noisier

All variants train the same model (same initial weights) on the same prepared digits, with
the same optimiser, batch size and number of epochs, in one process:

- hand loop: a plain PyTorch loop over shuffled tensor slices (the baseline, ratio 1.00);
- lightning: Lightning's loop alone on the same tensor slices: no metrics, callbacks or
             logger; the floor for anything built on Lightning, and so where the rest goes;
- dlpipe:    dlpipe's own Trainer, task, loaders and MLflow epoch logging, as `train()` runs;
- template:  Lightning with DataLoader(TensorDataset), torchmetrics accuracy and Lightning's
             MLFlowLogger logging every step, as project templates commonly set it up.

Only the training phase of each epoch is timed (first batch start to last batch end;
validation and checkpointing are excluded throughout), and the first epoch is a warm-up.
"""

import argparse
import logging
import os
import tempfile
import time
import warnings
from pathlib import Path

import lightning.pytorch as pl
import torch
from hydra import compose, initialize_config_dir
from lightning.pytorch.loggers import MLFlowLogger
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset
from torchmetrics.classification import MulticlassAccuracy

from dlpipe.data.arrays import load_prepared
from dlpipe.data.prepare import prepare
from dlpipe.paths import PROJECT
from dlpipe.tasks.module import Task
from dlpipe.tasks.objectives import classification
from dlpipe.tracking import client as tracking
from dlpipe.training.lightning_hooks import MlflowEpochLogger
from dlpipe.training.optim import build_optimizer
from dlpipe.training.train import build_model, build_trainer, loaders

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"


class TrainPhaseTimer(pl.Callback):
    """Seconds from each epoch's start to its last training batch's end."""

    def __init__(self):
        self.seconds: list[float] = []

    def on_train_epoch_start(self, trainer, pl_module):
        self._start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self._last = time.perf_counter()

    def on_train_epoch_end(self, trainer, pl_module):
        self.seconds.append(self._last - self._start)


class BareModule(pl.LightningModule):
    """Loss and optimiser only: what Lightning's loop costs by itself."""

    def __init__(self, model, optim):
        super().__init__()
        self.model, self.optim = model, optim

    def training_step(self, batch, batch_idx):
        x, y = batch
        return F.cross_entropy(self.model(x), y)

    def configure_optimizers(self):
        return build_optimizer(self.parameters(), **self.optim)


class TemplateModule(BareModule):
    """The usual template module: step-level logging of loss and accuracy."""

    def __init__(self, model, num_classes, optim):
        super().__init__(model, optim)
        self.train_acc = MulticlassAccuracy(num_classes, average="micro")
        self.val_acc = MulticlassAccuracy(num_classes, average="micro")

    def training_step(self, batch, batch_idx):
        x, y = batch
        logits = self.model(x)
        loss = F.cross_entropy(logits, y)
        self.train_acc(logits, y)
        self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True)
        self.log("train/acc", self.train_acc, on_step=True, on_epoch=True, prog_bar=True)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self.model(x)
        self.val_acc(logits, y)
        self.log("val/loss", F.cross_entropy(logits, y))
        self.log("val/acc", self.val_acc)


def fresh_model(cfg, meta):
    torch.manual_seed(cfg.seed)
    return build_model(cfg, meta)


def hand_loop(cfg, data, uri: str) -> list[float]:
    model = fresh_model(cfg, data.meta)
    optimiser = build_optimizer(model.parameters(), **dict(cfg.optim))
    x, y = data.splits["train"]
    batch, seconds = cfg.data.batch_size, []
    generator = torch.Generator().manual_seed(cfg.seed)
    model.train()
    for _ in range(cfg.trainer.max_epochs):
        start = time.perf_counter()
        order = torch.randperm(len(y), generator=generator)
        xs, ys = x[order], y[order]
        for i in range(0, len(ys), batch):
            loss = F.cross_entropy(model(xs[i : i + batch]), ys[i : i + batch])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
        seconds.append(time.perf_counter() - start)
    return seconds


def lightning_fit(cfg, data, uri: str) -> list[float]:
    timer = TrainPhaseTimer()
    trainer = pl.Trainer(
        accelerator="cpu",
        max_epochs=cfg.trainer.max_epochs,
        logger=False,
        callbacks=[timer],
        enable_progress_bar=False,
        enable_checkpointing=False,
        enable_model_summary=False,
    )
    train_loader, _ = loaders(cfg, data)
    trainer.fit(BareModule(fresh_model(cfg, data.meta), dict(cfg.optim)), train_loader)
    return timer.seconds


def dlpipe_fit(cfg, data, uri: str) -> list[float]:
    client = tracking.get_client(uri)
    run_id = tracking.open_run(client, "overhead", {})
    train_loader, val_loader = loaders(cfg, data)
    schedule = {"steps_per_epoch": len(train_loader), "max_epochs": cfg.trainer.max_epochs}
    objective = classification(len(data.meta["classes"]))
    task = Task(fresh_model(cfg, data.meta), objective, dict(cfg.optim), schedule)
    timer = TrainPhaseTimer()
    logger = MlflowEpochLogger(echo=True, max_epochs=cfg.trainer.max_epochs)
    logger.attach(client, run_id)
    trainer = build_trainer(cfg, logger, len(train_loader), PROJECT, (timer,))
    with tracking.closing_run(client, run_id):
        trainer.fit(task, train_loader, val_loader)
    return timer.seconds


def template_fit(cfg, data, uri: str) -> list[float]:
    module = TemplateModule(fresh_model(cfg, data.meta), len(data.meta["classes"]), dict(cfg.optim))
    (x, y), (x_val, y_val) = data.splits["train"], data.splits["val"]
    batch = cfg.data.batch_size
    timer = TrainPhaseTimer()
    trainer = pl.Trainer(
        accelerator="cpu",
        max_epochs=cfg.trainer.max_epochs,
        log_every_n_steps=1,
        logger=MLFlowLogger(experiment_name="overhead-template", tracking_uri=uri),
        callbacks=[timer],
        enable_progress_bar=False,
        enable_checkpointing=False,
        enable_model_summary=False,
    )
    trainer.fit(
        module,
        DataLoader(TensorDataset(x, y), batch_size=batch, shuffle=True),
        DataLoader(TensorDataset(x_val, y_val), batch_size=batch),
    )
    return timer.seconds


def warm_epochs(seconds: list[float]) -> list[float]:
    return seconds[1:]  # the first epoch pays one-off costs (allocations, lazy imports)


VARIANTS = {
    "hand loop": hand_loop,
    "lightning": lightning_fit,
    "dlpipe": dlpipe_fit,
    "template": template_fit,
}


def measure(model: str, epochs: int, rounds: int, uri: str) -> dict[str, float]:
    with initialize_config_dir(str(CONF_DIR)):
        cfg = compose(
            "config",
            overrides=[
                f"model={model}",
                f"trainer.max_epochs={epochs}",
                f"trainer.early_stopping.patience={epochs}",
            ],
        )
    data = load_prepared(Path("data/prepared"))
    examples = data.meta["sizes"]["train"]
    epochs_seconds: dict[str, list[float]] = {name: [] for name in VARIANTS}
    for _ in range(rounds):  # interleaved, so drifting machine load hits all alike
        for name, fit in VARIANTS.items():
            epochs_seconds[name] += warm_epochs(fit(cfg, data, uri))
    # The fastest epoch: other load on the machine only ever slows an epoch down.
    return {name: examples / min(seconds) for name, seconds in epochs_seconds.items()}


def report(model: str, rates: dict[str, float], batch: int) -> None:
    base = rates["hand loop"]
    for name, rate in rates.items():
        extra_us = (1 / rate - 1 / base) * batch * 1e6
        print(f"{model:<5} {name:<10} {rate:>10.0f} {rate / base:>7.2f} {extra_us:>12.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--models", nargs="+", default=["mlp", "cnn"])
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    warnings.filterwarnings("ignore")
    os.environ["PYTHONWARNINGS"] = "ignore"
    with tempfile.TemporaryDirectory() as workdir:
        os.chdir(workdir)
        with initialize_config_dir(str(CONF_DIR)):
            cfg = compose("config")
        prepare(cfg.data, Path("data/prepared"))
        uri = f"sqlite:///{Path(workdir) / 'mlflow.db'}"
        print(
            f"digits, batch {cfg.data.batch_size}, {args.epochs} epochs (first is warm-up), "
            f"fastest epoch of {args.rounds} rounds, torch threads {torch.get_num_threads()}"
        )
        print(f"{'model':<5} {'variant':<10} {'examples/s':>10} {'ratio':>7} {'+us/step':>12}")
        for model in args.models:
            report(model, measure(model, args.epochs, args.rounds, uri), cfg.data.batch_size)


if __name__ == "__main__":
    main()
