"""The evaluate stage's plots: each file written whole, from numbers checked by hand."""

import csv
from pathlib import Path

import numpy as np
import pytest

from dlpipe.evaluation import plots

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def rows(path: Path) -> list[list[float]]:
    with open(path, newline="") as handle:
        return [[float(cell) for cell in row] for row in list(csv.reader(handle))[1:]]


def assert_pngs(folder: Path, *names: str) -> None:
    """Each named image is a whole PNG, and no temporary file of a write is left."""
    for name in names:
        assert (folder / name).read_bytes().startswith(PNG_SIGNATURE)
    assert not list(folder.glob(".*.tmp"))


def test_roc_and_pr_curves_of_known_scores(tmp_path: Path):
    # Ranked by score: positive, negative, positive, negative.
    actual = np.array([0, 0, 1, 1])
    probability = np.array([0.1, 0.4, 0.35, 0.8])
    written = plots.roc_pr(actual, probability, ["stay", "go"], tmp_path)
    assert [path.name for path in written] == ["roc.csv", "roc.png", "pr.csv", "pr.png"]
    roc = rows(tmp_path / "roc.csv")
    assert [(fpr, tpr) for fpr, tpr, _ in roc] == [
        (0, 0),
        (0, 0.5),
        (0.5, 0.5),
        (0.5, 1),
        (1, 1),
    ]
    # The area under those steps: 0.5 * 0.5 + 0.5 * 1.
    assert np.trapezoid([tpr for _, tpr, _ in roc], [fpr for fpr, _, _ in roc]) == 0.75
    pr = rows(tmp_path / "pr.csv")
    assert [(recall, round(precision, 4)) for recall, precision, _ in pr] == [
        (1, 0.5),
        (1, 0.6667),
        (0.5, 0.5),
        (0.5, 1),
        (0, 1),
    ]
    assert [threshold for *_, threshold in pr[:-1]] == pytest.approx([0.1, 0.35, 0.4, 0.8])
    assert np.isnan(pr[-1][2])
    assert_pngs(tmp_path, "roc.png", "pr.png")


def test_perfect_scores_reach_the_top_left_corner(tmp_path: Path):
    plots.roc_pr(np.array([0, 1, 0, 1]), np.array([0.2, 0.9, 0.3, 0.7]), ["a", "b"], tmp_path)
    assert [0.0, 1.0] in [point[:2] for point in rows(tmp_path / "roc.csv")]


def test_positive_probability_from_one_or_two_scores():
    single = plots.positive_probability(np.array([[0.0], [np.log(3)]]))
    assert single == pytest.approx([0.5, 0.75])
    # softmax([0, ln 3])[1] = 3 / (1 + 3)
    pair = plots.positive_probability(np.array([[0.0, np.log(3)], [1.0, 1.0]]))
    assert pair == pytest.approx([0.75, 0.5])


def test_a_head_s_plots_carry_its_name(tmp_path: Path):
    actual = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    written = plots.residuals(actual, actual + 0.5, tmp_path, head="position")
    written += plots.roc_pr(np.array([0, 1]), np.array([0.3, 0.6]), ["a", "b"], tmp_path, "kind")
    assert sorted(path.name for path in written) == [
        "kind_pr.csv",
        "kind_pr.png",
        "kind_roc.csv",
        "kind_roc.png",
        "position_residuals.png",
    ]
    assert_pngs(tmp_path, "position_residuals.png", "kind_roc.png", "kind_pr.png")


@pytest.mark.parametrize("horizon", [1, 3])
def test_forecasts_against_actuals(tmp_path: Path, horizon: int):
    series = np.sin(np.arange(40) / 3)
    # Row i: the `horizon` steps after window i, as the prepare stage cuts them.
    actual = np.stack([series[i : i + horizon] for i in range(40 - horizon + 1)])
    assert plots.forecasts(actual, actual * 0.9, tmp_path) == [tmp_path / "forecasts.png"]
    assert_pngs(tmp_path, "forecasts.png")


def test_sample_grid_of_images_and_of_series(tmp_path: Path):
    images = np.random.default_rng(0).random((20, 1, 8, 8))
    assert plots.samples(images, tmp_path) == [tmp_path / "samples.png"]
    assert_pngs(tmp_path, "samples.png")
    plots.samples(np.random.default_rng(0).random((3, 24)), tmp_path / "series")
    assert_pngs(tmp_path / "series", "samples.png")


def test_learning_curves_draw_each_metric_the_task_logs(tmp_path: Path):
    """A task's own metric (val/confidence) is drawn beside the loss and the accuracy; what
    the task does not name (the learning rate) is not."""
    history = [
        {"epoch": epoch, "train/loss": 1 / epoch, "val/loss": 1.2 / epoch, "val/acc": 0.5,
         "train/confidence": 0.4 + epoch / 10, "val/confidence": 0.3 + epoch / 10,
         "train/lr": 0.01}
        for epoch in (1, 2, 3)
    ]  # fmt: skip
    written = plots.learning_curves(history, tmp_path, ("loss", "acc", "confidence"))
    assert [path.name for path in written] == ["learning_curves.csv", "learning_curves.png"]
    with open(tmp_path / "learning_curves.csv", newline="") as handle:
        header = next(csv.reader(handle))
    assert header == [
        "epoch",
        "train/loss",
        "val/loss",
        "val/acc",
        "train/confidence",
        "val/confidence",
    ]
    assert rows(tmp_path / "learning_curves.csv")[2][-1] == pytest.approx(0.6)
    assert_pngs(tmp_path, "learning_curves.png")
