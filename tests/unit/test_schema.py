"""The config schema: every option validates, every bad value is named with its key path,
and the schema says what the code reading each setting takes."""

import dataclasses
import inspect
import subprocess
import sys
import typing

import pytest
from omegaconf import OmegaConf

from dlpipe.config.schema import groups
from dlpipe.config.schema.validate import validate
from dlpipe.errors import ConfigError
from dlpipe.models import registry
from dlpipe.models.init import SCHEMES
from dlpipe.models.mlp import ACTIVATIONS
from dlpipe.training.optim import OPTIMIZERS, build_optimizer, build_schedule
from tests.conftest import CONF_DIR, ROOT, model_cfg

GROUPS = ("data", "model", "optim", "schedule", "trainer", "tracking", "cluster", "search")


def options(group: str) -> list[str]:
    return sorted(path.stem for path in (CONF_DIR / group).glob("*.yaml"))


def settings(schema: type) -> set[str]:
    return {field.name for field in dataclasses.fields(schema)}


def choices(hint) -> set:
    return set(typing.get_args(hint))


def with_required_set(make_cfg, *overrides: str):
    """The composed config, with a stand-in for each value conf/ leaves required (`???`)."""
    missing = OmegaConf.missing_keys(make_cfg(*overrides))
    return make_cfg(*overrides, *(f"{key}=stand-in" for key in sorted(missing)))


@pytest.mark.parametrize(
    "override",
    [f"{group}={option}" for group in GROUPS for option in options(group)]
    + [f"experiment={preset}" for preset in options("experiment")],
)
def test_every_option_and_preset_validates(make_cfg, override):
    validate(with_required_set(make_cfg, override))


def test_params_yaml_validates_into_typed_settings():
    typed = validate(OmegaConf.load(ROOT / "params.yaml"))
    assert typed.model["_target_"] == "dlpipe.models.cnn.cnn"
    assert typed.model["channels"] == [32, 64]
    assert typed.data.source == "dlpipe.data.digits.digits" and typed.data.split.val == 0.15
    assert typed.data.settings == {"keep": None, "canvas": None, "seed": 0}
    assert typed.resume is True and typed.search is None


@pytest.mark.parametrize(
    "overrides,message",
    [
        # Unknown keys, at the top level and nested, list what the group takes.
        (
            ("+lr=0.1",),
            "lr is not a setting of the config: it takes data, model, task, optim, schedule, "
            "trainer, tracking, cluster, search, seed, resume, transfer, multitask, evaluate, "
            "registry",
        ),
        (
            ("+trainer.max_eppochs=3",),
            "trainer.max_eppochs is not a setting of trainer: it takes accelerator, devices, "
            "precision, max_epochs, gradient_clip_val, gradient_clip_algorithm, early_stopping, "
            "checkpoint_monitor, checkpoint_mode, checkpoint_tiebreak, checkpoint_tiebreak_mode, "
            "refit, augment",
        ),
        (
            ("+trainer.early_stopping.patiance=3",),
            "trainer.early_stopping.patiance is not a setting of trainer.early_stopping: "
            "it takes monitor, mode, patience",
        ),
        (
            ("+data.noise=0.5",),
            "data.noise is not a setting of data 'digits': it takes name, split, batch_size, "
            "normalise, train_per_class, keep, canvas, seed",
        ),
        (
            ("+model.depth=3",),
            "model.depth is not a setting of model 'cnn' (dlpipe.models.cnn.cnn): it takes "
            "channels, hidden, dropout",
        ),
        # Wrong types.
        (("data.batch_size=abc",), "data.batch_size must be an integer > 0, got 'abc'"),
        (("trainer.max_epochs=2.5",), "trainer.max_epochs must be an integer >= 1, got 2.5"),
        (("data.normalise=maybe",), "data.normalise must be true, false or series, got 'maybe'"),
        (("resume=1",), "resume must be true or false, got 1"),
        (("seed=abc",), "seed must be an integer >= 0, got 'abc'"),
        (("model.channels=8",), "model.channels must be a non-empty list of integers > 0, got 8"),
        (
            ("model=mlp", "model.hidden=[64,abc]"),
            "model.hidden[1] must be an integer > 0, got 'abc'",
        ),
        # Out of range: each range the issue names, and a few more.
        (("optim.lr=0",), "optim.lr must be a number > 0, got 0"),
        (("optim.lr=-0.1",), "optim.lr must be a number > 0, got -0.1"),
        (("model.dropout=1.5",), "model.dropout must be a number in [0, 1), got 1.5"),
        (("model.dropout=1.0",), "model.dropout must be a number in [0, 1), got 1.0"),
        (("model.dropout=-0.1",), "model.dropout must be a number in [0, 1), got -0.1"),
        (("data.batch_size=0",), "data.batch_size must be an integer > 0, got 0"),
        (("trainer.max_epochs=0",), "trainer.max_epochs must be an integer >= 1, got 0"),
        (
            ("data.split.val=0",),
            "data.split.val=0 leaves no val samples: set data.split.val in (0, 1), give a "
            "file of them with data.val_path, or name a split column with data.split.column",
        ),
        (("data.split.test=1",), "data.split.test must be a number in [0, 1), got 1"),
        (
            ("data.split.test=0.9",),
            "data.split.val + data.split.test must be below 1 to leave training data",
        ),
        (("schedule.warmup_epochs=-1",), "schedule.warmup_epochs must be a number >= 0, got -1"),
        (
            ("trainer.gradient_clip_val=0",),
            "trainer.gradient_clip_val must be a number > 0 or null, got 0",
        ),
        (
            ("trainer.early_stopping.patience=-1",),
            "trainer.early_stopping.patience must be an integer >= 0 or null, got -1",
        ),
        (("data.keep=[0,12]",), "data.keep[1] must be an integer in [0, 9], got 12"),
        (("data.canvas=4",), "data.canvas must be an integer >= 8 or null, got 4"),
        (
            ("multitask.weights={digit:-1}",),
            "multitask.weights.digit must be a number >= 0, got -1",
        ),
        (
            ("transfer.freeze=-1",),
            "transfer.freeze must be one of none, body or an integer >= 0, got -1",
        ),
        (
            ("optim=adamw", "+optim.betas=[0.9]"),
            "optim.betas must be a list of 2 numbers in [0, 1), got [0.9]",
        ),
        # Numbers must be finite, and given as themselves, not as another setting's value.
        (("optim.lr=1e999",), "optim.lr must be a number > 0, got inf, which is not finite"),
        (
            ("multitask.weights={digit:inf}",),
            "multitask.weights.digit must be a number >= 0, got inf, which is not finite",
        ),
        (
            ("optim.lr='${seed}'",),
            "optim.lr='${seed}' takes the value of seed (42): give optim.lr a number of its own",
        ),
        (
            ("model.channels=[16,'${trainer.max_epochs}']",),
            "model.channels[1]='${trainer.max_epochs}' takes the value of trainer.max_epochs "
            "(40): give model.channels[1] a number of its own",
        ),
        # A list that sizes layers needs a layer.
        (("model.channels=[]",), "model.channels must be a non-empty list of integers > 0, got []"),
        (
            ("data=table", "data.path=pets.csv", "data.target=[]"),
            "data.target must be a non-empty list of strings, got []",
        ),
        # Choices.
        (
            ("~model._target_",),
            "model._target_ is missing: choose a model with model=<name> (dlpipe models lists "
            "them) or name your own with model._target_=package.module.Class",
        ),
        (
            ("model._target_=dlpipe.models.cnn.vgg",),
            "_target_ 'dlpipe.models.cnn.vgg': module 'dlpipe.models.cnn' has no 'vgg'",
        ),
        (("model=lstm", "model.layers=0"), "model.layers must be an integer > 0, got 0"),
        (
            ("model=transformer", "model.heads=two"),
            "model.heads must be an integer > 0, got 'two'",
        ),
        (
            ("model=perceptron", "model.output=relu"),
            "model.output must be one of sigmoid, step, got 'relu'",
        ),
        (("optim.name=lbfgs",), "optim.name must be one of adam, adamw, rmsprop, sgd, got 'lbfgs'"),
        (
            ("model.init=he",),
            "model.init must be one of default, xavier, kaiming, normal, got 'he'",
        ),
        (
            ("trainer.gradient_clip_algorithm=max",),
            "trainer.gradient_clip_algorithm must be one of norm, value, got 'max'",
        ),
        (
            ("trainer.early_stopping.mode=up",),
            "trainer.early_stopping.mode must be one of min, max or null, got 'up'",
        ),
        (
            ("trainer.checkpoint_monitor=train/loss",),
            "trainer.checkpoint_monitor must be one of val/loss, val/acc, val/mae, val/d_acc, "
            "val/perplexity, val/bpc, val/f1, or val/<target>/loss|acc|mae for multi-task data, "
            "or null for the task's own, got 'train/loss'",
        ),
        (
            ("trainer.checkpoint_mode=min",),
            "trainer.checkpoint_mode=min needs trainer.checkpoint_monitor: name the metric it "
            "watches, or leave both null for the task's own",
        ),
        (
            ("trainer.early_stopping.monitor=null",),
            "trainer.early_stopping.mode=min needs trainer.early_stopping.monitor: name the "
            "metric it watches, or leave both null for the task's own",
        ),
        (
            ("registry.metric=test/speed",),
            "registry.metric must be a test metric whose name says which way is better (loss, "
            "mse, rmse, mae: lower; acc, f1, auroc, r2, skill: higher), e.g. test/acc, or null "
            "for the task's own, got 'test/speed'",
        ),
        (
            ("data=npz", "data.path=x.npz", "data.task=forecasting"),
            "data.task must be one of classification, regression, got 'forecasting'",
        ),
        # What conf/ leaves for the command line.
        (("data=table",), "data.path is required for data 'table': set data.path=..."),
        (
            ("~data._target_",),
            "data._target_ is missing: choose a data set with data=<name> or name your own "
            "source in its YAML with _target_: package.module.function",
        ),
        (
            ("data._target_=dlpipe.data.synthetic.spirals",),
            "_target_ 'dlpipe.data.synthetic.spirals': module 'dlpipe.data.synthetic' has no "
            "'spirals'",
        ),
    ],
)
def test_bad_values_name_the_key_the_value_and_what_is_allowed(make_cfg, overrides, message):
    with pytest.raises(ConfigError) as caught:
        validate(make_cfg(*overrides))
    assert str(caught.value) == message


def test_a_string_may_follow_another_setting(make_cfg):
    typed = validate(make_cfg("data=weather", "tracking.experiment=${data.name}-runs"))
    assert typed.tracking.experiment == "weather-runs"


MODEL_OPTIONS = options("model")
LAYER_LISTS = [
    (name, key)
    for name in MODEL_OPTIONS
    for key, found in registry.signature(model_cfg(name)).settings.items()
    if typing.get_origin(found.hint) is list
]


@pytest.mark.parametrize("name,key", LAYER_LISTS)
def test_every_list_that_sizes_layers_is_refused_empty(make_cfg, name, key):
    with pytest.raises(ConfigError, match=rf"^model.{key} must be a non-empty list of integers"):
        validate(make_cfg(f"model={name}", f"model.{key}=[]"))


def test_validating_imports_neither_torch_nor_mlflow():
    # Every model's settings are read from its builder's source, not by importing it.
    script = (
        "import sys\n"
        "from hydra import compose, initialize_config_dir\n"
        "from dlpipe.config.schema.validate import validate\n"
        f"with initialize_config_dir({str(CONF_DIR)!r}):\n"
        f"    for name in {MODEL_OPTIONS!r}:\n"
        "        validate(compose('config', overrides=[f'model={name}']))\n"
        "print(sorted({'torch', 'lightning', 'mlflow'} & set(sys.modules)))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


# The schema against the code that reads each setting.


@pytest.mark.parametrize("name", MODEL_OPTIONS)
def test_models_set_every_setting_of_their_builders(name):
    # conf/model/<name>.yaml shows (and a sweep or a search can vary) each setting.
    values = model_cfg(name)
    found = registry.signature(values)
    assert set(values) == set(found.settings) | set(registry.OWN_KEYS)
    if "activation" in found.settings:
        assert choices(found.settings["activation"].hint) == set(ACTIVATIONS)


def test_init_schemes_are_the_ones_a_config_may_name():
    assert tuple(SCHEMES) == registry.INITS


def test_optimisers_take_torchs_arguments():
    assert set(groups.OPTIMS) == set(OPTIMIZERS)
    for name, optimiser in OPTIMIZERS.items():
        own = settings(groups.OPTIMS[name]) - {"name"}
        assert own <= set(inspect.signature(optimiser).parameters)


@pytest.mark.parametrize("option", options("schedule"))
def test_every_schedule_builds_from_its_settings(make_cfg, option):
    import torch

    cfg = make_cfg(f"schedule={option}")
    optimiser = build_optimizer([torch.nn.Parameter(torch.zeros(1))], name="sgd", lr=0.1)
    given = OmegaConf.to_container(cfg.schedule)
    assert set(given) == settings(groups.SCHEDULES[option])
    build_schedule(optimiser, steps_per_epoch=4, max_epochs=10, **given)


def test_trainer_choices_are_lightnings():
    from lightning.fabric.connector import _PRECISION_INPUT
    from lightning.pytorch.accelerators import AcceleratorRegistry

    hints = typing.get_type_hints(groups.Trainer)
    lightning_precisions = {
        value for kind in typing.get_args(_PRECISION_INPUT) for value in choices(kind)
    }
    assert choices(hints["precision"]) <= lightning_precisions
    accelerators = set(AcceleratorRegistry.available_accelerators()) | {"auto", "gpu"}
    assert choices(hints["accelerator"]) <= accelerators
