"""trainer.refit: the chosen number of epochs, trained anew on train+val, is best.ckpt."""

from types import SimpleNamespace

import pytest
import torch
from torch import nn

from dlpipe.config import checks as config
from dlpipe.data.arrays import ArrayLoader, PreparedData
from dlpipe.errors import ConfigError
from dlpipe.paths import Outputs
from dlpipe.tasks.kinds import builtin
from dlpipe.training.checkpoints import load_checkpoint, model_weights
from dlpipe.training.lightning_hooks import MlflowEpochLogger
from dlpipe.training.refit import check_refit, chosen_epochs, refit
from dlpipe.training.train import build_task, build_trainer

META = {"task": "classification", "classes": ["a", "b"]}


def split(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    y = torch.arange(n) % 2
    noise = torch.randn(n, 1, generator=torch.Generator().manual_seed(seed))
    return (y * 2.0 - 1.0)[:, None] + noise, y


def test_refit_trains_the_chosen_epochs_on_train_and_val(make_cfg, tmp_path):
    cfg = make_cfg("model=mlp", "trainer.max_epochs=4", "trainer.refit=true", "data.batch_size=8")
    cfg = config.watching(cfg, "classification")
    data = PreparedData(META, {"train": split(24, 0), "val": split(16, 1)})
    out = Outputs(tmp_path)
    train, val = ArrayLoader(*data.splits["train"], 8), ArrayLoader(*data.splits["val"], 8)
    logger = MlflowEpochLogger()
    logger.attach(SimpleNamespace(log_batch=lambda *args, **kwargs: None), "run")
    task = build_task(cfg, META, nn.Linear(1, 2), steps_per_epoch=len(train))
    build_trainer(cfg, logger, len(train), out).fit(task, train, val)
    epochs = chosen_epochs(out)
    chosen = model_weights(load_checkpoint(out.best_ckpt, ""))

    def build(refit_cfg, steps_per_epoch):
        assert refit_cfg.trainer.max_epochs == epochs  # its schedule spans the refit
        return build_task(refit_cfg, META, nn.Linear(1, 2), steps_per_epoch)

    assert refit(cfg, data, build, out) == epochs
    saved = load_checkpoint(out.best_ckpt, "")
    assert saved["global_step"] == epochs * (24 + 16) // 8  # every sample of both splits
    assert not torch.equal(model_weights(saved)["weight"], chosen["weight"])


@pytest.mark.parametrize(
    "overrides,task,message",
    [
        (("cluster=ray",), "classification", "refits in one process: use cluster=local"),
        ((), "generation", "generation trains all its epochs: set trainer.refit=false"),
    ],
)
def test_refit_that_cannot_choose_an_epoch_here_is_refused(make_cfg, overrides, task, message):
    with pytest.raises(ConfigError, match=message):
        check_refit(make_cfg("trainer.refit=true", *overrides), builtin(task))
