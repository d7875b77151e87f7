"""Losses and test metrics per task, checked against values worked out by hand; a user's
own task trained as a built-in one is."""

import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from torch.nn import functional as F

from dlpipe.config import checks as config
from dlpipe.config.schema.validate import validate
from dlpipe.data.arrays import ArrayLoader
from dlpipe.errors import ConfigError
from dlpipe.paths import Outputs
from dlpipe.tasks import metrics
from dlpipe.tasks.kinds import builtin, replace
from dlpipe.tasks.objectives import classification_loss, perceptron_criterion
from dlpipe.tracking.champion import judged
from dlpipe.training.lightning_hooks import BestEpoch, MlflowEpochLogger
from dlpipe.training.train import build_model, build_task, build_trainer, task_kind
from tests.conftest import ROOT, assert_one_line_error


def test_perceptron_criterion_counts_only_the_wrong_side():
    scores = torch.tensor([[2.0], [-1.0], [0.5], [0.0]])
    y = torch.tensor([1, 0, 0, 0])
    # Right, right, wrong by 0.5, on the boundary (wrong, by 0): mean over all four.
    assert perceptron_criterion(scores, y).item() == pytest.approx(0.5 / 4)
    many = torch.tensor([[3.0, 1.0, 0.0], [1.0, 2.5, 0.0]])
    assert perceptron_criterion(many, torch.tensor([0, 0])).item() == pytest.approx(1.5 / 2)


def test_binary_scores_use_the_logistic_loss():
    scores, y = torch.tensor([[0.3], [-2.0]]), torch.tensor([1, 0])
    expected = F.binary_cross_entropy_with_logits(scores[:, 0], y.float())
    assert classification_loss(scores, y, step=False).item() == pytest.approx(expected.item())


def test_binary_metrics_read_the_sign_of_the_score():
    scores, y = torch.tensor([[2.0], [-1.0], [0.5], [-3.0]]), torch.tensor([1, 0, 0, 0])
    found, matrix = metrics.classification(scores, y, num_classes=2)
    assert found["test/acc"] == pytest.approx(0.75) and found["test/auroc"] == pytest.approx(1.0)
    assert matrix.tolist() == [[2, 1], [0, 1]]


def test_regression_metrics_are_in_the_data_units():
    stats = {"y_mean": [[10.0]], "y_std": [[2.0]]}
    y, predicted = torch.tensor([[0.0], [1.0]]), torch.tensor([[0.5], [1.0]])  # standardised
    found = metrics.regression(predicted, y, stats)
    assert found["test/mae"] == pytest.approx(0.5)  # half of 0.5 standard deviations of 2
    assert found["test/rmse"] == pytest.approx((1.0**2 / 2) ** 0.5)


def test_forecast_skill_is_measured_against_the_last_value():
    stats = {"y_mean": [[0.0]], "y_std": [[1.0]]}
    x = torch.tensor([[[1.0], [2.0]], [[2.0], [3.0]]])  # windows of 2
    y = torch.tensor([[3.0], [4.0]])
    baseline = metrics.last_value_baseline(x, horizon=1)
    assert metrics.forecasting(baseline, x, y, stats)["test/skill"] == pytest.approx(0.0)
    perfect = metrics.forecasting(y, x, y, stats)
    assert perfect["test/baseline_rmse"] == pytest.approx(1.0) and perfect["test/skill"] == 1.0


# A user's own task: the README's example ("Extend dlpipe > Your own task"), trained
# through the path a built-in task takes.

SECTION = "### Your own task"
# A code block of the README that is a file of the example: its first line names it.
_FILE_BLOCK = re.compile(r"```python\n# (?P<path>[\w/.]+\.py)\b[^\n]*\n(?P<body>.*?)```", re.S)


def readme_example() -> tuple[dict[str, str], list[str]]:
    """The section's files by path, and the overrides of its train command."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index(SECTION) :].split("\n### ", 1)[0]
    files = {match["path"]: match["body"] for match in _FILE_BLOCK.finditer(section)}
    command = section.split("```bash\n", 1)[1].split("```", 1)[0].split()
    assert command[:2] == ["python", "pipelines/train.py"]
    return files, command[2:]


@pytest.fixture
def own_task(tmp_path: Path, monkeypatch) -> Path:
    """A project folder holding the README's package, as the cwd."""
    files, _ = readme_example()
    for path, body in files.items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(body)
    (tmp_path / "mypkg" / "__init__.py").write_text("")
    monkeypatch.chdir(tmp_path)
    yield tmp_path
    for module in [name for name in sys.modules if name.split(".")[0] == "mypkg"]:
        del sys.modules[module]


class Recorded:
    """An MLflow client that keeps what the epoch logger logs."""

    def __init__(self):
        self.logged: dict[str, list[float]] = {}

    def log_batch(self, run_id: str, metrics=(), **kwargs) -> None:
        for metric in metrics:
            self.logged.setdefault(metric.key, []).append(metric.value)


def test_own_task_trains_as_a_built_in_and_logs_its_metric(own_task: Path, make_cfg, tmp_path):
    _, overrides = readme_example()
    cfg = make_cfg(*overrides, "model=mlp", "model.hidden=[8]")
    validate(cfg)
    meta = {"task": "classification", "classes": ["a", "b", "c"], "input_shape": [4]}
    meta["num_outputs"] = 3
    kind = task_kind(cfg, meta)
    config.check_monitors(cfg, kind)
    # Its settings reach its loss.
    scores, y = torch.randn(5, 3), torch.tensor([0, 1, 2, 0, 1])
    setup = SimpleNamespace(model=None, meta=meta)
    expected = F.cross_entropy(scores, y, label_smoothing=0.2)
    assert kind.objective(setup).loss(scores, None, y).item() == pytest.approx(expected.item())
    generator = torch.Generator().manual_seed(0)
    x, y = torch.randn(48, 4, generator=generator), torch.arange(48) % 3
    batches = ArrayLoader(x, y, 16)
    model = build_model(cfg, meta)
    task = build_task(cfg, meta, model, len(batches), kind)
    client, logger = Recorded(), MlflowEpochLogger()
    logger.attach(client, "run")
    trainer = build_trainer(cfg, logger, len(batches), Outputs(tmp_path / "out"), (), kind)
    trainer.fit(task, batches, batches)
    assert len(client.logged["val/confidence"]) == 2 and len(client.logged["train/acc"]) == 2
    ranked = next(c for c in trainer.callbacks if isinstance(c, BestEpoch))
    assert ranked.order[0] == ("val/confidence", "max") and ranked.best is not None


@pytest.mark.parametrize(
    "overrides,message",
    [
        (("+task.smoothing=1",), "task.smoothing must be a number in [0, 1), got 1"),
        (
            ("+task.width=3",),
            "task.width is not a setting of task mypkg.tasks.smoothed: it takes smoothing",
        ),
        (
            ("trainer.checkpoint_monitor=val/mae",),
            "trainer.checkpoint_monitor=val/mae is not logged for classification data: use one "
            "of val/loss, val/acc, val/confidence, e.g. trainer.checkpoint_monitor=val/confidence "
            "trainer.checkpoint_mode=max",
        ),
    ],
)
def test_own_task_bad_settings_are_one_line(own_task: Path, make_cfg, overrides, message):
    cfg = make_cfg("+task._target_=mypkg.tasks.smoothed", *overrides)
    with pytest.raises(ConfigError) as caught:
        validate(cfg)
        config.check_monitors(cfg, task_kind(cfg, {"task": "classification"}))
    assert str(caught.value) == message


def test_own_task_for_other_data_is_refused(own_task: Path, make_cfg):
    cfg = make_cfg("+task._target_=mypkg.tasks.smoothed")
    with pytest.raises(ConfigError, match=r"is a classification task but this training is regr"):
        task_kind(cfg, {"task": "regression"})


def test_own_task_bad_setting_stops_the_stage_with_one_line(own_task: Path):
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "pipelines" / "train.py"),
            "+task._target_=mypkg.tasks.smoothed",
            "+task.smoothing=-0.5",
        ],
        cwd=own_task,
        capture_output=True,
        text=True,
    )
    assert_one_line_error(done, "task.smoothing must be a number in [0, 1), got -0.5")


def test_own_task_is_watched_and_drawn_by_its_own_metric(own_task: Path, make_cfg):
    """No trainer setting: checkpointing watches the task's own monitor, which way it
    names; early stopping the loss; its learning curves draw its metric too."""
    cfg = make_cfg("+task._target_=mypkg.tasks.smoothed")
    validate(cfg)
    kind = task_kind(cfg, {"task": "classification"})
    watched = config.watching(cfg, kind).trainer
    assert (watched.checkpoint_monitor, watched.checkpoint_mode) == ("val/confidence", "max")
    assert (watched.early_stopping.monitor, watched.early_stopping.mode) == ("val/loss", "min")
    assert cfg.trainer.checkpoint_monitor is None  # the config given is left as it was
    assert kind.curves() == ("loss", "acc", "confidence")


# What each preset checkpointed on when it named its monitor, and the task it trains.
_PRESET_TASKS = {
    "digits_autoencoder": "reconstruction",
    "digits_gan": "generation",
    "linear_perceptron": "regression",
    "located_digits_cnn": "multitask",
    "python_docs_gpt": "language_model",
    "python_docs_lstm": "language_model",
    "sunspots_gru": "forecasting",
    "sunspots_lstm": "forecasting",
    "sunspots_transformer": "forecasting",
}


@pytest.mark.parametrize("preset", sorted(p.stem for p in (ROOT / "conf/experiment").glob("*")))
def test_presets_watch_what_they_did_when_they_named_it(make_cfg, preset):
    cfg = make_cfg(f"experiment={preset}")
    validate(cfg)
    task = _PRESET_TASKS.get(preset, "classification")
    watched = config.watching(cfg, task).trainer
    expected = ("val/acc", "max") if task == "classification" else ("val/loss", "min")
    assert (watched.checkpoint_monitor, watched.checkpoint_mode) == expected
    assert (watched.early_stopping.monitor, watched.early_stopping.mode) == ("val/loss", "min")


def test_null_watches_the_task_s_own_and_a_null_mode_is_the_task_s(make_cfg):
    stopping = ("trainer.early_stopping.monitor=null", "trainer.early_stopping.mode=null")
    cfg = make_cfg("trainer.checkpoint_monitor=val/loss", *stopping)
    validate(cfg)
    trainer = config.watching(cfg, "classification").trainer
    assert (trainer.checkpoint_monitor, trainer.checkpoint_mode) == ("val/loss", "min")
    assert (trainer.early_stopping.monitor, trainer.early_stopping.mode) == ("val/acc", "max")


def test_a_head_s_monitor_takes_its_task_s_mode(make_cfg):
    heads = [{"name": "digit", "task": "classification"}, {"name": "at", "task": "regression"}]
    cfg = make_cfg("trainer.checkpoint_monitor=val/digit/acc")
    trainer = config.watching(cfg, "multitask", heads).trainer
    assert (trainer.checkpoint_monitor, trainer.checkpoint_mode) == ("val/digit/acc", "max")


def test_a_monitor_whose_way_the_task_does_not_say_needs_its_mode(make_cfg):
    cfg = make_cfg("trainer.checkpoint_monitor=val/mae")
    with pytest.raises(ConfigError) as caught:
        config.watching(cfg, "regression")
    assert str(caught.value) == (
        "trainer.checkpoint_mode is null and regression does not say which way val/mae is "
        "better: set trainer.checkpoint_mode=max (higher is better) or min"
    )
    cfg = make_cfg("trainer.checkpoint_monitor=val/mae", "trainer.checkpoint_mode=min")
    assert config.watching(cfg, "regression").trainer.checkpoint_mode == "min"


def test_own_task_named_otherwise_is_refused_saying_why(own_task: Path, make_cfg):
    (own_task / "mypkg" / "named.py").write_text(
        "from dlpipe.tasks.kinds import builtin, replace\n\n\n"
        "def renamed():\n    return replace(builtin('classification'), name='smoothed')\n"
    )
    cfg = make_cfg("+task._target_=mypkg.named.renamed")
    with pytest.raises(ConfigError) as caught:
        task_kind(cfg, {"task": "classification"})
    assert str(caught.value) == (
        "task mypkg.named.renamed is named 'smoothed', none of dlpipe's tasks (classification, "
        "regression, forecasting, reconstruction, generation, language_model, "
        "token_classification, multitask): a task keeps the name of the one it is built on, "
        "here the training's classification: replace(builtin('classification'), ...) without "
        "name="
    )


def test_champion_metric_and_its_way_come_from_the_task():
    own = replace(builtin("regression"), champion="worst_error", champion_mode="min")
    assert judged(own) == ("test/worst_error", "min")
    assert judged(builtin("classification")) == ("test/acc", "max")
    heads = [{"name": "digit", "task": "classification"}]
    assert judged(builtin("multitask"), heads) == ("test/digit/acc", "max")
    # A metric the task does not name: its way from its name, else refused.
    assert judged(own, metric="test/r2") == ("test/r2", "max")
    with pytest.raises(ConfigError, match=r"registry\.metric must be a test metric whose name"):
        judged(own, metric="test/speed")
    assert judged(builtin("reconstruction")) is None
