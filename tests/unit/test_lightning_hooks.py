"""What a training shows while it runs: a bar per epoch on a terminal, the model's size."""

import logging
import re
import sys
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from dlpipe.data.arrays import ArrayLoader
from dlpipe.paths import Outputs
from dlpipe.training.lightning_hooks import MlflowEpochLogger
from dlpipe.training.train import build_task, build_trainer


def fit_small(make_cfg, tmp_path, epochs: int) -> MlflowEpochLogger:
    """Two epochs of a linear classifier through the Trainer dlpipe builds; the logger
    whose history the plain epoch lines print."""
    cfg = make_cfg("model=mlp", f"trainer.max_epochs={epochs}")
    meta = {"task": "classification", "classes": ["a", "b", "c"]}
    generator = torch.Generator().manual_seed(0)
    x, y = torch.randn(48, 4, generator=generator), torch.arange(48) % 3
    batches = ArrayLoader(x, y, 16)
    task = build_task(cfg, meta, nn.Linear(4, 3), steps_per_epoch=len(batches))
    logger = MlflowEpochLogger()
    logger.attach(SimpleNamespace(log_batch=lambda *args, **kwargs: None), "run")
    trainer = build_trainer(cfg, logger, len(batches), Outputs(tmp_path))
    trainer.fit(task, batches, batches)
    return logger


def test_terminal_bar_shows_each_epoch_numbered_as_the_lines_with_its_metrics(
    make_cfg, tmp_path, capsys, monkeypatch
):
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    logger = fit_small(make_cfg, tmp_path, epochs=2)
    # The bar redraws itself with carriage returns: its last drawing of each epoch stays.
    drawn = re.split(r"[\r\n]", capsys.readouterr().out)
    assert "v_num" not in "".join(drawn) and "Epoch 0" not in "".join(drawn)
    for epoch in (0, 1):
        final = [text for text in drawn if text.startswith(f"epoch {epoch + 1}/2")][-1]
        for key, value in logger.history[epoch].items():
            assert f"{key}={value:.4f}" in final


def test_model_size_is_one_line_not_a_table(make_cfg, tmp_path, caplog, capsys):
    with caplog.at_level(logging.INFO):
        fit_small(make_cfg, tmp_path, epochs=1)
    shown = caplog.text + capsys.readouterr().out
    assert "Total params" not in shown and "| Name" not in shown
    assert "model: 15 parameters, 15 trainable" in caplog.messages


def test_a_tie_in_the_checkpoint_metric_keeps_the_epoch_with_the_lower_loss(make_cfg, tmp_path):
    """Validation accuracy reaches 1.0 within a few epochs and stays there while the loss
    still falls: best.ckpt is a later epoch at 1.0, the one with the lowest val/loss."""
    cfg = make_cfg("model=mlp", "trainer.max_epochs=8", "optim.lr=0.05", "schedule=none")
    meta = {"task": "classification", "classes": ["a", "b"]}
    y = torch.arange(32) % 2
    x = (y * 2.0 - 1.0)[:, None] + 0.1 * torch.randn(
        32, 1, generator=torch.Generator().manual_seed(0)
    )
    batches = ArrayLoader(x, y, 8)
    torch.manual_seed(0)
    task = build_task(cfg, meta, nn.Linear(1, 2), steps_per_epoch=len(batches))
    logger = MlflowEpochLogger()
    logger.attach(SimpleNamespace(log_batch=lambda *args, **kwargs: None), "run")
    out = Outputs(tmp_path)
    build_trainer(cfg, logger, len(batches), out).fit(task, batches, batches)
    perfect = {
        epoch: row["val/loss"] for epoch, row in logger.history.items() if row.get("val/acc") == 1.0
    }
    assert len(perfect) > 1  # a tie: several epochs at 1.0
    kept = torch.load(out.best_ckpt, weights_only=True)["epoch"]
    assert kept == min(perfect, key=perfect.get) != min(perfect)


def test_the_best_epoch_so_far_survives_a_resume():
    """A resumed training ranks on from the checkpoint's state: an epoch no better than
    the best before the interruption does not replace it."""
    from dlpipe.training.lightning_hooks import RANK, BestEpoch

    def epoch(ranker, acc, loss):
        trainer = SimpleNamespace(
            sanity_checking=False,
            callback_metrics={"val/acc": torch.tensor(acc), "val/loss": torch.tensor(loss)},
        )
        ranker.on_validation_end(trainer, None)
        return float(trainer.callback_metrics[RANK])

    before = BestEpoch("val/acc", "max", "val/loss", "min")
    assert epoch(before, 0.5, 0.9) < epoch(before, 1.0, 0.4) < epoch(before, 1.0, 0.2)
    resumed = BestEpoch("val/acc", "max", "val/loss", "min")
    resumed.load_state_dict(before.state_dict())
    ranks = [epoch(resumed, 1.0, 0.3), epoch(resumed, 0.9, 0.1), epoch(resumed, 1.0, 0.1)]
    assert ranks == [2.5, 2.5, 4.0]  # below the best of 3 epochs ago, then above it
    assert resumed.score == 1.0 and resumed.best == [1.0, pytest.approx(0.1)]
