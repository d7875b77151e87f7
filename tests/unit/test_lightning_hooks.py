"""What a training shows while it runs: a bar per epoch on a terminal, the model's size."""

import logging
import re
import sys
from types import SimpleNamespace

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
