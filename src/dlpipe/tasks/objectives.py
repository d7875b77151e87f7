"""What a task optimises and reports: its loss, and its metrics over a whole epoch.

An objective sees the model's outputs with the batch; `keep` picks what each step
retains (detached) for the epoch's metrics, which `metrics` computes once per epoch:
per-step metric updates cost more than a small model's whole step
(see benchmarks/overhead.py).
"""

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch.nn import functional as F
from torchmetrics.functional import accuracy

from dlpipe.data.raw import head_slices
from dlpipe.data.tokenise import UNSCORED
from dlpipe.tasks.metrics import predicted_classes, tagging

if TYPE_CHECKING:
    from dlpipe.tasks.kinds import Setup

Batch = tuple[torch.Tensor, torch.Tensor]


@dataclass(frozen=True)
class Objective:
    """loss(outputs, x, y); keep(outputs, x, y) -> tensors; metrics(*kept, concatenated)."""

    loss: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
    keep: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], tuple[torch.Tensor, ...]]
    metrics: Callable[..., dict[str, torch.Tensor]]


def perceptron_criterion(scores: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean of -margin over the samples on the wrong side of (or on) the boundary."""
    if scores.shape[1] == 1:  # binary: the sign of the one score is the class
        margin = (2 * y.float() - 1) * scores[:, 0]
    else:  # multi-class: the true class's score against the best other one
        true = scores.gather(1, y[:, None])[:, 0]
        others = scores.scatter(1, y[:, None], float("-inf")).max(1).values
        margin = true - others
    wrong = margin <= 0
    return (-margin * wrong).mean()


def classification_loss(scores: torch.Tensor, y: torch.Tensor, step: bool) -> torch.Tensor:
    """Cross-entropy; the logistic loss for one (binary) score; the perceptron criterion
    for a `step` output."""
    if step:
        return perceptron_criterion(scores, y)
    if scores.shape[1] == 1:
        return F.binary_cross_entropy_with_logits(scores[:, 0], y.float())
    return F.cross_entropy(scores, y)


def classification(num_classes: int, step: bool = False) -> Objective:
    """Integer labels; accuracy per epoch. Two classes take one score (the second's logit)."""

    def epoch_accuracy(predicted: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        return {
            "acc": accuracy(predicted, y, "multiclass", num_classes=num_classes, average="micro")
        }

    return Objective(
        loss=lambda scores, x, y: classification_loss(scores, y, step),
        keep=lambda scores, x, y: (predicted_classes(scores), y),
        metrics=epoch_accuracy,
    )


def regression() -> Objective:
    """Float targets (batch, outputs), standardised; mean absolute error per epoch."""
    return Objective(
        loss=lambda predicted, x, y: F.mse_loss(predicted, y),
        keep=lambda predicted, x, y: (predicted, y),
        metrics=lambda predicted, y: {"mae": F.l1_loss(predicted, y)},
    )


def reconstruction() -> Objective:
    """The input is the target (labels unused): mean squared error is the loss and the metric."""
    return Objective(
        loss=lambda rebuilt, x, y: F.mse_loss(rebuilt, x),
        keep=lambda rebuilt, x, y: (),
        metrics=lambda: {},
    )


def language_model(token_chars: list[int]) -> Objective:
    """Next-token cross-entropy over every scored step (targets UNSCORED are not); per
    epoch, the perplexity per token and the bits per character of text, `token_chars[i]`
    the characters token i stands for."""
    chars = torch.tensor(token_chars)

    def nats(logits: torch.Tensor, y: torch.Tensor, reduction: str) -> torch.Tensor:
        return F.cross_entropy(
            logits.reshape(-1, logits.shape[-1]),
            y.reshape(-1),
            reduction=reduction,
            ignore_index=UNSCORED,
        )

    def kept(logits: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, ...]:
        total = nats(logits, y, "sum").float().reshape(1)
        scored = y[y != UNSCORED]
        covered = chars.to(y.device)[scored].sum().reshape(1)
        return total, torch.tensor([float(scored.numel())], device=y.device), covered

    def epoch_metrics(total, tokens, covered) -> dict[str, torch.Tensor]:
        # Summed in float64 (on the CPU: not every device has it), each step's in float32.
        total, tokens, covered = (part.cpu().double().sum() for part in (total, tokens, covered))
        return {
            "perplexity": torch.exp(total / tokens).float(),
            "bpc": (total / math.log(2) / covered).float(),
        }

    return Objective(
        loss=lambda logits, x, y: nats(logits, y, "mean"), keep=kept, metrics=epoch_metrics
    )


def token_classification(classes: list[str]) -> Objective:
    """A tag per word: cross-entropy at each word's first piece (targets UNSCORED are not
    scored); per epoch, the accuracy over words and the F1 over the entities their tags
    mark (see dlpipe.tasks.metrics.tagging)."""

    def loss(scores: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        flat = scores.reshape(-1, scores.shape[-1])
        return F.cross_entropy(flat, y.reshape(-1), ignore_index=UNSCORED)

    def epoch_metrics(predicted: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        found = tagging(predicted.cpu(), y.cpu(), classes)
        return {name: torch.tensor(found[name]) for name in ("acc", "f1")}

    return Objective(
        loss=loss, keep=lambda scores, x, y: (scores.argmax(-1), y), metrics=epoch_metrics
    )


def head_target(y: torch.Tensor, columns: slice, task: str) -> torch.Tensor:
    """One head's targets from a multi-task y: class indices, or values (n, k)."""
    return y[:, columns.start].long() if task == "classification" else y[:, columns]


def head_objective(head: dict) -> Objective:
    if head["task"] == "classification":
        return classification(len(head["classes"]))
    return regression()


def multitask(heads: list[dict], weights: dict[str, float]) -> Objective:
    """The weighted sum of each head's loss; per epoch, every head's loss and metrics,
    named <head>/<metric> (e.g. digit/acc, position/mae)."""
    outputs_of, columns_of = head_slices(heads, "outputs"), head_slices(heads, "columns")
    parts = [
        (head["name"], outputs_of[head["name"]], columns_of[head["name"]], head["task"])
        for head in heads
    ]
    objectives = {head["name"]: head_objective(head) for head in heads}

    def head_losses(outputs: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        return {
            name: objectives[name].loss(outputs[:, out], None, head_target(y, cols, task))
            for name, out, cols, task in parts
        }

    def weighted_loss(outputs: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return sum(weights[name] * loss for name, loss in head_losses(outputs, y).items())

    def epoch_metrics(outputs: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        metrics = {f"{name}/loss": loss for name, loss in head_losses(outputs, y).items()}
        for name, out, cols, task in parts:
            objective, target = objectives[name], head_target(y, cols, task)
            kept = objective.keep(outputs[:, out], None, target)
            metrics.update({f"{name}/{key}": v for key, v in objective.metrics(*kept).items()})
        return metrics

    return Objective(
        loss=weighted_loss,
        keep=lambda outputs, x, y: (outputs, y),
        metrics=epoch_metrics,
    )


# The objectives of dlpipe's tasks, for a training's `Setup` (see dlpipe.tasks.kinds).


def classification_of(setup: "Setup") -> Objective:
    step = getattr(setup.model, "output", None) == "step"
    return classification(len(setup.meta["classes"]), step)


def regression_of(setup: "Setup") -> Objective:
    return regression()


def reconstruction_of(setup: "Setup") -> Objective:
    return reconstruction()


def language_model_of(setup: "Setup") -> Objective:
    return language_model(setup.meta["text"]["token_chars"])


def token_classification_of(setup: "Setup") -> Objective:
    return token_classification(setup.meta["classes"])


def multitask_of(setup: "Setup") -> Objective:
    return multitask(setup.meta["heads"], setup.weights)
