"""The config tree: params.yaml mirrors conf/, every option composes and builds, bad values fail."""

import itertools
from pathlib import Path

import pytest
import torch
import yaml
from dvc.utils.hydra import compose_and_dump

from dlpipe.config import checks as config
from dlpipe.config.schema.validate import validate
from dlpipe.errors import ConfigError
from dlpipe.models.registry import LANGUAGE_MODEL, model_task, own_task
from dlpipe.paths import PROJECT
from dlpipe.training.lightning_hooks import BestEpoch
from dlpipe.training.optim import build_optimizer, build_schedule
from dlpipe.training.train import build_model, build_task, build_trainer, task_of
from tests.conftest import CONF_DIR, ROOT, SAMPLE_SHAPES, VOCAB, reads, sample


def options(group: str) -> list[str]:
    return sorted(path.stem for path in (CONF_DIR / group).glob("*.yaml"))


def test_params_yaml_is_conf_composed_without_overrides(tmp_path: Path):
    # The same composition `dvc exp run` performs; if this fails, regenerate params.yaml.
    composed = tmp_path / "params.yaml"
    compose_and_dump(str(composed), str(CONF_DIR), None, "config", str(ROOT), [])
    committed = yaml.safe_load((ROOT / "params.yaml").read_text())
    assert committed == yaml.safe_load(composed.read_text())


@pytest.mark.parametrize(
    "model,optim,trainer",
    list(itertools.product(options("model"), options("optim"), options("trainer"))),
)
def test_every_option_composes_validates_and_builds(make_cfg, model, optim, trainer):
    cfg = make_cfg(f"model={model}", f"optim={optim}", f"trainer={trainer}")
    validate(cfg)
    settings = config.to_dict(cfg.model)
    kind = next(kind for kind in SAMPLE_SHAPES if reads(settings, kind))
    shape = SAMPLE_SHAPES[kind]
    # A language model scores each token of the vocabulary, on a text corpus.
    language_model = own_task(settings) == LANGUAGE_MODEL
    outputs = VOCAB if language_model else 10
    meta = {"input_shape": list(shape), "num_outputs": outputs}
    if kind == "tokens":
        meta["text"] = {"vocab_size": VOCAB}
    net = build_model(cfg, meta)
    optimiser = build_optimizer(net.parameters(), **config.to_dict(cfg.optim))
    before = [p.detach().clone() for p in net.parameters()]
    task = model_task(settings, LANGUAGE_MODEL if language_model else "classification")
    logits = net(torch.randn(4, net.latent) if task == "generation" else sample(kind, 4))
    logits.sum().backward()
    optimiser.step()
    wanted = {"reconstruction": (4, *shape), "generation": (4, *shape)}
    wanted[LANGUAGE_MODEL] = (4, *shape, VOCAB)
    assert logits.shape == wanted.get(task, (4, outputs))
    assert any(not torch.equal(a, b) for a, b in zip(before, net.parameters(), strict=True))


def lrs_over_training(make_cfg, *overrides: str, steps_per_epoch: int = 4) -> list[float]:
    cfg = make_cfg(*overrides, "optim=sgd", "optim.lr=1.0", "trainer.max_epochs=10")
    validate(cfg)
    optimiser = build_optimizer([torch.nn.Parameter(torch.zeros(1))], **config.to_dict(cfg.optim))
    schedule = build_schedule(
        optimiser,
        steps_per_epoch=steps_per_epoch,
        max_epochs=cfg.trainer.max_epochs,
        **config.to_dict(cfg.schedule),
    )
    lrs = []
    for _ in range(steps_per_epoch * cfg.trainer.max_epochs):
        lrs.append(optimiser.param_groups[0]["lr"])
        optimiser.step()
        if schedule:
            schedule.step()
    return lrs


def test_schedules_shape_the_learning_rate_over_training(make_cfg):
    # 10 epochs of 4 steps, optim.lr=1.0; each list holds the rate at every step.
    assert set(lrs_over_training(make_cfg, "schedule=none")) == {1.0}
    step = lrs_over_training(make_cfg, "schedule=step", "schedule.step_epochs=5")
    assert step[:20] == [1.0] * 20 and step[20:] == [0.5] * 20
    exponential = lrs_over_training(make_cfg, "schedule=exponential", "schedule.gamma=0.5")
    assert exponential[4] == pytest.approx(0.5) and exponential[8] == pytest.approx(0.25)
    cosine = lrs_over_training(make_cfg, "schedule=cosine")
    assert cosine[20] == pytest.approx(0.5) and cosine[-1] < 0.01
    onecycle = lrs_over_training(make_cfg, "schedule=onecycle")
    peak = onecycle.index(max(onecycle))
    assert max(onecycle) == pytest.approx(1.0) and 10 <= peak <= 14  # pct_start 0.3 of 40
    assert onecycle[0] < 0.1 and onecycle[-1] < 1e-3


def test_warmup_rises_linearly_then_hands_over(make_cfg):
    lrs = lrs_over_training(make_cfg, "schedule=cosine", "schedule.warmup_epochs=2")
    assert lrs[0] == pytest.approx(0.1)
    assert lrs[:8] == sorted(lrs[:8]) and lrs[8] == pytest.approx(1.0)
    assert lrs[8:] == sorted(lrs[8:], reverse=True)


@pytest.mark.parametrize(
    "overrides,message",
    [
        (("schedule=onecycle", "schedule.warmup_epochs=1"), "warms up by itself"),
        (("schedule.warmup_epochs=10",), "leaves no training after the warm-up"),
    ],
)
def test_schedule_settings_that_cannot_work_are_named(make_cfg, overrides, message):
    with pytest.raises(ConfigError, match=message):
        lrs_over_training(make_cfg, *overrides)


def test_cpu_trainer_config_builds_the_trainer(make_cfg):
    cfg = make_cfg("trainer=cpu", "trainer.max_epochs=3")
    trainer = build_trainer(cfg, logger=False, steps_per_epoch=10, out=PROJECT)
    assert trainer.max_epochs == 3
    ranked = next(c for c in trainer.callbacks if isinstance(c, BestEpoch))
    assert ranked.order == (("val/acc", "max"), ("val/loss", "min"))
    assert trainer.early_stopping_callback.monitor == "val/loss"
    assert trainer.gradient_clip_val is None
    clipped = make_cfg("trainer.gradient_clip_val=0.5", "trainer.gradient_clip_algorithm=value")
    trainer = build_trainer(clipped, logger=False, steps_per_epoch=10, out=PROJECT)
    assert (trainer.gradient_clip_val, trainer.gradient_clip_algorithm) == (0.5, "value")


@pytest.mark.parametrize(
    "off", ["trainer.early_stopping=null", "trainer.early_stopping.patience=null"]
)
def test_early_stopping_switched_off_trains_every_epoch(make_cfg, off):
    cfg = make_cfg("trainer=cpu", off)
    validate(cfg)
    assert config.watching(cfg, "classification").trainer.checkpoint_monitor == "val/acc"
    trainer = build_trainer(cfg, logger=False, steps_per_epoch=10, out=PROJECT)
    assert trainer.early_stopping_callback is None
    assert trainer.checkpoint_callback is not None


def test_gpu_trainer_is_cpu_settings_with_bf16_on_gpu(make_cfg):
    cpu, gpu = make_cfg("trainer=cpu").trainer, make_cfg("trainer=gpu").trainer
    assert (gpu.accelerator, gpu.precision) == ("gpu", "bf16-mixed")
    assert gpu.max_epochs == cpu.max_epochs and gpu.early_stopping == cpu.early_stopping


def test_unknown_model_setting_is_named(make_cfg):
    cfg = make_cfg("+model.depth=3")
    with pytest.raises(ConfigError, match=r"model\.depth is not a setting of model 'cnn'"):
        build_model(cfg, {"input_shape": [1, 8, 8], "num_outputs": 10})


def test_flatten_gives_dotted_keys():
    flat = config.flatten(
        {"optim": {"lr": 0.1, "name": "sgd"}, "model": {"channels": [1, 2]}, "seed": 3}
    )
    assert flat == {"optim.lr": 0.1, "optim.name": "sgd", "model.channels": [1, 2], "seed": 3}


def test_config_hash_changes_with_any_value(make_cfg):
    base = config.config_hash(make_cfg())
    assert base == config.config_hash(make_cfg())
    assert base != config.config_hash(make_cfg("optim.lr=0.003"))


def test_prepared_data_must_match_the_data_config(make_cfg):
    prepared = config.to_dict(make_cfg().data)
    meta = {"data": {key: value for key, value in prepared.items() if key != "batch_size"}}
    config.check_prepared_matches(make_cfg(), meta)
    with pytest.raises(ConfigError, match=r"data\.split is .*'seed': 3.* run the prepare stage"):
        config.check_prepared_matches(make_cfg("data.split.seed=3"), meta)


def test_settings_the_model_or_optimiser_refuse_are_config_errors(make_cfg):
    meta = {"input_shape": [1, 8, 8], "num_outputs": 10}
    with pytest.raises(ConfigError, match=r"model\.hidden must be a non-empty list of integers"):
        build_model(make_cfg("model=mlp", "model.hidden=abc"), meta)
    net = build_model(make_cfg(), meta)
    with pytest.raises(ConfigError, match="optim 'adam' refuses its settings"):
        build_optimizer(net.parameters(), **config.to_dict(make_cfg("+optim.betas=1").optim))


def _first_samples(cfg, folder: Path) -> tuple[dict, torch.Tensor, torch.Tensor]:
    """What a preset's data gives a training: its meta data and 64 samples. Texts go
    through the prepare stage: their tokens come from a tokeniser it trains."""
    from dlpipe.data.arrays import load_prepared
    from dlpipe.data.prepare import prepare
    from dlpipe.data.sources import load_source

    if cfg.data.get("text") is not None:
        prepare(cfg.data, folder)
        data = load_prepared(folder, ("train",))
        x, y = data.splits["train"]
        return data.meta, x[:64], y[:64]
    raw = load_source(config.to_dict(cfg.data))
    meta = {
        "task": raw.task,
        "input_shape": list(raw.x.shape[1:]),
        "num_outputs": raw.num_outputs,
        "classes": raw.classes,
        "heads": raw.heads,
    }
    return meta, torch.tensor(raw.x[:64]), torch.tensor(raw.y[:64])


@pytest.mark.parametrize("preset", options("experiment"))
def test_every_preset_composes_and_runs_a_fast_dev_run(make_cfg, preset, tmp_path):
    import lightning.pytorch as pl

    from dlpipe.data.arrays import ArrayLoader

    cfg = make_cfg(f"experiment={preset}")
    validate(cfg)
    header = (CONF_DIR / "experiment" / f"{preset}.yaml").read_text().splitlines()[1]
    assert header.startswith("# python pipelines/") and f"experiment={preset}" in header
    meta, x, y = _first_samples(cfg, tmp_path)
    config.check_monitors(cfg, task_of(cfg, meta), meta["heads"])
    batches = ArrayLoader(x, y, 16)
    task = build_task(cfg, meta, build_model(cfg, meta), steps_per_epoch=len(batches))
    trainer = pl.Trainer(
        fast_dev_run=2, logger=False, enable_progress_bar=False, enable_model_summary=False
    )
    trainer.fit(task, batches, batches)
    assert trainer.state.finished
