"""Losses and test metrics per task, checked against values worked out by hand."""

import pytest
import torch
from torch.nn import functional as F

from dlpipe import metrics
from dlpipe.tasks.objectives import classification_loss, perceptron_criterion


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
