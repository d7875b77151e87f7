"""Test metrics and plots per task, for evaluate: each built-in task's `TaskKind.test`.

Each takes the `Scoring` of a trained model (dlpipe.tasks.kinds) and returns its test/*
metrics and the plots it wrote.
"""

from pathlib import Path

import numpy as np
import torch

from dlpipe.data.raw import head_slices
from dlpipe.evaluation import plots
from dlpipe.evaluation.generation import score_samples
from dlpipe.tasks import metrics as task_metrics
from dlpipe.tasks.kinds import Scoring
from dlpipe.tasks.objectives import head_target


@torch.inference_mode()
def outputs(scoring: Scoring) -> torch.Tensor:
    """The model's outputs (scores or values) for every test row, a batch at a time."""
    x, size = scoring.data.splits["test"][0], scoring.batch_size
    return torch.cat([scoring.model(x[start : start + size]) for start in range(0, len(x), size)])


def classification(scoring: Scoring) -> tuple[dict, list[Path]]:
    """Accuracy, loss, F1 (AUROC for two classes); confusion matrix, ROC and PR curves."""
    y, scores, classes = scoring.data.splits["test"][1], outputs(scoring), scoring.record.classes
    return _classified(scores, y, classes, scoring.folder)


def regression(scoring: Scoring) -> tuple[dict, list[Path]]:
    """Errors in the data's units; predicted against actual, residuals."""
    y, predicted, stats = scoring.data.splits["test"][1], outputs(scoring), _stats(scoring)
    metrics = task_metrics.regression(predicted, y, stats)
    return metrics, _estimated(predicted, y, stats, scoring.folder, plots.residuals)


def forecasting(scoring: Scoring) -> tuple[dict, list[Path]]:
    """Errors and the skill over repeating the last value; predicted against actual, forecasts."""
    x, y = scoring.data.splits["test"]
    predicted, stats = outputs(scoring), _stats(scoring)
    metrics = task_metrics.forecasting(predicted, x, y, stats)
    return metrics, _estimated(predicted, y, stats, scoring.folder, _forecast_plots)


def reconstruction(scoring: Scoring) -> tuple[dict, list[Path]]:
    """MSE against PCA with as many components as the latent size; inputs and rebuilt ones."""
    x, rebuilt = scoring.data.splits["test"][0], outputs(scoring)
    latent = scoring.record.model["latent"]
    metrics = task_metrics.reconstruction(rebuilt, x, scoring.data.splits["train"][0], latent)
    return metrics, plots.reconstructions(x.numpy(), rebuilt.numpy(), scoring.folder)


def generation(scoring: Scoring) -> tuple[dict, list[Path]]:
    """Samples judged by the discriminator and, when evaluate.classifier names one, a
    classifier; the samples drawn."""
    x = scoring.data.splits["test"][0]
    return score_samples(
        scoring.model, x, scoring.samples, scoring.seed, scoring.classifier(), scoring.folder
    )


def multitask(scoring: Scoring) -> tuple[dict, list[Path]]:
    """Each head's test metrics, named test/<head>/<metric>, and its plots, named <head>_*."""
    heads, y, scores = scoring.record.heads, scoring.data.splits["test"][1], outputs(scoring)
    stats, folder = _stats(scoring), scoring.folder
    outputs_of, columns_of = head_slices(heads, "outputs"), head_slices(heads, "columns")
    metrics, written = {}, []
    for head in heads:
        name, columns = head["name"], columns_of[head["name"]]
        head_scores, target = scores[:, outputs_of[name]], head_target(y, columns, head["task"])
        if head["task"] == "classification":
            found, drawn = _classified(head_scores, target, head["classes"], folder, name)
        else:
            scale = {
                key: np.asarray(value)[..., columns]
                for key, value in stats.items()
                if key.startswith("y_")
            }
            found = task_metrics.regression(head_scores, target, scale)
            drawn = _estimated(head_scores, target, scale, folder, plots.residuals, name)
        metrics.update({key.replace("test/", f"test/{name}/"): v for key, v in found.items()})
        written += drawn
    return metrics, written


def _stats(scoring: Scoring) -> dict:
    return scoring.data.meta["stats"]


def _classified(
    scores: torch.Tensor, y: torch.Tensor, classes: list[str], folder: Path, head: str | None = None
) -> tuple[dict, list[Path]]:
    found, matrix = task_metrics.classification(scores, y, len(classes))
    predicted = task_metrics.predicted_classes(scores).numpy()
    written = plots.confusion(y.numpy(), predicted, matrix.numpy(), classes, folder, head)
    if len(classes) == 2:  # ROC and precision-recall curves: for two classes only
        probability = plots.positive_probability(scores.numpy())
        written += plots.roc_pr(y.numpy(), probability, classes, folder, head)
    return found, written


def _estimated(
    predicted: torch.Tensor, y: torch.Tensor, stats: dict, folder: Path, more, head=None
) -> list[Path]:
    """Predicted against actual in the data's units, and the task's own plot of them."""
    actual, estimate = task_metrics.unscale(y, stats), task_metrics.unscale(predicted, stats)
    written = plots.predicted_vs_actual(actual.numpy(), estimate.numpy(), folder, head)
    return written + more(actual.numpy(), estimate.numpy(), folder, head)


def _forecast_plots(actual: np.ndarray, estimate: np.ndarray, folder: Path, head=None) -> list:
    return plots.forecasts(actual, estimate, folder)
