"""Test metrics and plots per task, for evaluate: each built-in task's `TaskKind.test`.

Each takes the `Scoring` of a trained model (dlpipe.tasks.kinds) and returns its test/*
metrics and the plots it wrote.
"""

from pathlib import Path

import numpy as np
import torch

from dlpipe import files
from dlpipe.data import tokenise
from dlpipe.data.arrays import ArrayLoader, Loader
from dlpipe.data.raw import head_slices
from dlpipe.data.shard_loader import ShardLoader
from dlpipe.evaluation import plots
from dlpipe.evaluation.generation import score_samples
from dlpipe.paths import PREPARED_DIR
from dlpipe.tasks import metrics as task_metrics
from dlpipe.tasks import writing
from dlpipe.tasks.kinds import Scoring
from dlpipe.tasks.objectives import head_target
from dlpipe.tasks.objectives import language_model as language_model_objective
from dlpipe.tasks.objectives import token_classification as token_classification_objective


def test_batches(scoring: Scoring, workers: int | None = None) -> Loader:
    """The test split a batch at a time, in its stored order: from memory, or streamed
    from its shards (its inputs never all in memory at once) by `workers` reading
    processes (None: as data.stream says)."""
    data, size = scoring.data, scoring.batch_size
    if data.streamed("test"):
        stream = scoring.stream if workers is None else (workers, scoring.stream[1])
        return ShardLoader(data.folder, data.meta, ("test",), size, stream)
    return ArrayLoader(*data.splits["test"], size)


@torch.inference_mode()
def predicted(scoring: Scoring) -> tuple[torch.Tensor, torch.Tensor]:
    """The model's outputs (scores or values) for every test row, and the rows' targets."""
    outputs, targets = [], []
    for x, y in test_batches(scoring):
        outputs.append(scoring.model(x))
        targets.append(y)
    return torch.cat(outputs), torch.cat(targets)


def first_inputs(scoring: Scoring) -> torch.Tensor:
    """The first batch of test inputs (read in this process): an example of what the
    model takes."""
    return next(iter(test_batches(scoring, workers=0)))[0]


def classification(scoring: Scoring) -> tuple[dict, list[Path]]:
    """Accuracy, loss, F1 (AUROC for two classes); confusion matrix, ROC and PR curves."""
    scores, y = predicted(scoring)
    return _classified(scores, y, scoring.record.classes, scoring.folder)


def regression(scoring: Scoring) -> tuple[dict, list[Path]]:
    """Errors in the data's units; predicted against actual, residuals."""
    (values, y), stats = predicted(scoring), _stats(scoring)
    metrics = task_metrics.regression(values, y, stats)
    return metrics, _estimated(values, y, stats, scoring.folder, plots.residuals)


def forecasting(scoring: Scoring) -> tuple[dict, list[Path]]:
    """Errors and the skill over repeating the last value; predicted against actual, forecasts."""
    x = scoring.data.splits["test"][0]
    (values, y), stats = predicted(scoring), _stats(scoring)
    metrics = task_metrics.forecasting(values, x, y, stats)
    return metrics, _estimated(values, y, stats, scoring.folder, _forecast_plots)


def reconstruction(scoring: Scoring) -> tuple[dict, list[Path]]:
    """MSE against PCA with as many components as the latent size; inputs and rebuilt ones."""
    x, (rebuilt, _) = scoring.data.splits["test"][0], predicted(scoring)
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


@torch.inference_mode()
def language_model(scoring: Scoring) -> tuple[dict, list[Path]]:
    """Loss, perplexity and bits per character of the test text; samples.txt, what the
    model writes from the starts of test windows."""
    objective = language_model_objective(scoring.data.meta["text"]["token_chars"])
    kept = [objective.keep(scoring.model(x), x, y) for x, y in test_batches(scoring)]
    total, tokens, covered = (torch.cat(part) for part in zip(*kept, strict=True))
    found = objective.metrics(total, tokens, covered)
    metrics = {
        "test/loss": float(total.sum() / tokens.sum()),
        **{f"test/{name}": float(value) for name, value in found.items()},
    }
    meta = scoring.data.meta
    tokeniser = tokenise.load(PREPARED_DIR / meta["text"]["file"])
    starts = writing.prompts(scoring.data.splits["test"][0])
    text = writing.samples(scoring.model, tokeniser, starts, meta["text"]["context"], scoring.seed)
    path = scoring.folder / "samples.txt"
    files.write_text(path, text)
    return dict(sorted(metrics.items())), [path]


@torch.inference_mode()
def token_classification(scoring: Scoring) -> tuple[dict, list[Path]]:
    """Loss and accuracy over the test words, precision, recall and F1 over their
    entities."""
    scores, y = predicted(scoring)
    loss = token_classification_objective(scoring.record.classes).loss(scores, None, y)
    found = task_metrics.tagging(scores.argmax(-1), y, scoring.record.classes)
    metrics = {"test/loss": float(loss), **{f"test/{name}": v for name, v in found.items()}}
    return dict(sorted(metrics.items())), []


def multitask(scoring: Scoring) -> tuple[dict, list[Path]]:
    """Each head's test metrics, named test/<head>/<metric>, and its plots, named <head>_*."""
    heads, (scores, y) = scoring.record.heads, predicted(scoring)
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
