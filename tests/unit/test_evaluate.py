"""Evaluate takes the model and its data from the training's record: the command line's
overrides may repeat them, never contradict them."""

from pathlib import Path

import pytest

from dlpipe.config import checks as config
from dlpipe.errors import ConfigError
from dlpipe.evaluation.evaluate import check_overrides
from dlpipe.record import RunRecord

RUN_FILE = Path("models/run.json")


@pytest.fixture
def weather_record(make_cfg) -> RunRecord:
    """The record of a training of the weather perceptron preset."""
    cfg = make_cfg("experiment=weather_perceptron")
    return RunRecord(
        run_id="0" * 32,
        experiment="dlpipe",
        data=config.to_dict(cfg.data),
        registry_name="weather",
        model=config.to_dict(cfg.model),
        task="classification",
        input_shape=[4],
        num_outputs=2,
        classes=["no", "yes"],
        data_hash="d" * 64,
        best_checkpoint="models/best.ckpt",
        best_checkpoint_sha256="c" * 64,
        monitor="val/acc",
        best_score=1.0,
        shared=cfg.multitask.shared,
    )


@pytest.mark.parametrize(
    "overrides",
    [
        [],  # the defaults' data and model are not the training's: they are not asked for
        ["registry.promote=false", "trainer.max_epochs=2", "data.batch_size=64"],
        ["experiment=weather_perceptron"],
        ["data=weather", "model=perceptron", "model.output=step", "data.copies=25"],
    ],
)
def test_overrides_that_agree_with_the_training_pass(make_cfg, weather_record, overrides):
    check_overrides(make_cfg(*overrides), weather_record, overrides, RUN_FILE)


@pytest.mark.parametrize(
    "overrides,message",
    [
        (["data=digits"], "data=digits contradicts the training models/run.json records"),
        (["experiment=digits_cnn"], "data.name is digits here but weather there"),
        (["model=mlp"], "model.name is mlp here but perceptron there"),
        (["experiment=weather_perceptron", "model.output=sigmoid"], "model.output is sigmoid"),
        (["data=weather", "data.copies=3"], "data.copies is 3 here but 25 there"),
        (["multitask.shared=8"], "multitask.shared is 8 here but 64 there"),
    ],
)
def test_an_override_that_contradicts_the_training_is_refused(
    make_cfg, weather_record, overrides, message
):
    with pytest.raises(ConfigError, match=message) as refused:
        check_overrides(make_cfg(*overrides), weather_record, overrides, RUN_FILE)
    assert f"(run {'0' * 32})" in str(refused.value)
    assert str(refused.value).endswith("drop the override, or prepare and train with it first")
