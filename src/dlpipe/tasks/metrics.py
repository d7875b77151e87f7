"""Test metrics per task, from torchmetrics, in the data's own units.

Classification: loss, accuracy, F1 (and AUROC for two classes) and the confusion matrix.
Regression and forecasting: MSE, RMSE, MAE and R^2 after undoing the prepare stage's
standardisation; forecasting adds the last-value baseline's RMSE and the skill over it
(1 - rmse / baseline_rmse: 0.15 means 15% below the baseline's error).
Reconstruction: MSE on the (standardised) inputs, against PCA with as many components as
the model's latent size, fitted on the training split.
Token classification: accuracy over the words, and precision, recall and F1 over the
entities their BIO tags mark (CoNLL's measure).
"""

import numpy as np
import torch
from torch.nn import functional as F
from torchmetrics.functional import mean_absolute_error, mean_squared_error, r2_score
from torchmetrics.functional.classification import (
    binary_auroc,
    binary_f1_score,
    multiclass_accuracy,
    multiclass_confusion_matrix,
    multiclass_f1_score,
)

from dlpipe.data.tokenise import UNSCORED


def predicted_classes(scores: torch.Tensor) -> torch.Tensor:
    """Class indices from scores: the sign of a single (binary) score, else the largest."""
    return (scores[:, 0] > 0).long() if scores.shape[1] == 1 else scores.argmax(1)


def classification(scores: torch.Tensor, y: torch.Tensor, num_classes: int):
    """test/* metrics and the confusion matrix (rows: actual) of `scores` for labels `y`."""
    predicted = predicted_classes(scores)
    metrics = {"test/acc": multiclass_accuracy(predicted, y, num_classes, average="micro")}
    if scores.shape[1] == 1:
        metrics["test/loss"] = F.binary_cross_entropy_with_logits(scores[:, 0], y.float())
        metrics["test/f1"] = binary_f1_score(predicted, y)
        metrics["test/auroc"] = binary_auroc(scores[:, 0].sigmoid(), y)
    else:
        metrics["test/loss"] = F.cross_entropy(scores, y)
        metrics["test/f1_macro"] = multiclass_f1_score(predicted, y, num_classes, average="macro")
    matrix = multiclass_confusion_matrix(predicted, y, num_classes)
    return {key: float(value) for key, value in sorted(metrics.items())}, matrix


def unscale(values: torch.Tensor, stats: dict, prefix: str = "y") -> torch.Tensor:
    """Undo standardisation by the training statistics `stats` (nothing if there are none)."""
    if f"{prefix}_mean" not in stats:
        return values
    mean = torch.tensor(np.asarray(stats[f"{prefix}_mean"]).reshape(1, -1), dtype=values.dtype)
    std = torch.tensor(np.asarray(stats[f"{prefix}_std"]).reshape(1, -1), dtype=values.dtype)
    return values * std + mean


def regression(predicted: torch.Tensor, y: torch.Tensor, stats: dict) -> dict[str, float]:
    """test/mse, test/rmse, test/mae, test/r2 in the targets' own units."""
    predicted, y = unscale(predicted, stats), unscale(y, stats)
    mse = mean_squared_error(predicted, y)
    return {
        "test/mse": float(mse),
        "test/rmse": float(mse.sqrt()),
        "test/mae": float(mean_absolute_error(predicted, y)),
        "test/r2": float(r2_score(predicted.flatten(), y.flatten())),
    }


def last_value_baseline(x: torch.Tensor, horizon: int) -> torch.Tensor:
    """Forecast every step of the horizon as the window's last value of the target.

    The target is the series' first feature, on the same scale (see data.prepare). A padded
    series' last value is that of its last step not all NaN.
    """
    last = (~torch.isnan(x).all(dim=2)).sum(dim=1) - 1
    return x[torch.arange(len(x)), last.clamp(min=0), :1].expand(-1, horizon)


def forecasting(
    predicted: torch.Tensor, x: torch.Tensor, y: torch.Tensor, stats: dict
) -> dict[str, float]:
    """Regression metrics plus the last-value baseline's RMSE and the skill over it."""
    metrics = regression(predicted, y, stats)
    baseline = unscale(last_value_baseline(x, y.shape[1]), stats)
    baseline_rmse = float(mean_squared_error(baseline, unscale(y, stats)).sqrt())
    metrics["test/baseline_rmse"] = baseline_rmse
    metrics["test/skill"] = 1 - metrics["test/rmse"] / baseline_rmse
    return metrics


def reconstruction(
    rebuilt: torch.Tensor, x: torch.Tensor, x_train: torch.Tensor, latent: int
) -> dict[str, float]:
    """test/mse of the reconstruction, test/pca_mse of PCA's, and their ratio."""
    from sklearn.decomposition import PCA

    flat, flat_train = x.flatten(1).numpy(), x_train.flatten(1).numpy()
    pca = PCA(n_components=latent, random_state=0).fit(flat_train)
    pca_mse = float(np.mean((pca.inverse_transform(pca.transform(flat)) - flat) ** 2))
    mse = float(F.mse_loss(rebuilt, x))
    return {"test/mse": mse, "test/pca_mse": pca_mse, "test/mse_vs_pca": mse / pca_mse}


def entity_spans(tags: list[str]) -> set[tuple[int, int, str]]:
    """A sentence's entities as (first word, last word, type), read from its BIO tags as
    CoNLL's evaluation reads them: B-X starts an entity, as does an I-X that follows
    anything but X, and I-X words go on with it. A tag other than O without a B-/I-
    prefix (a part of speech) is an entity of its own word."""
    spans, start, kind = set(), None, None
    for place, tag in enumerate([*tags, "O"]):  # the O closes the last entity
        prefix, name = (tag[0], tag[2:]) if tag[:2] in ("B-", "I-") else ("", tag)
        goes_on = prefix == "I" and kind == name
        if start is not None and not goes_on:
            spans.add((start, place - 1, kind))
            start = kind = None
        if prefix == "B" or (prefix == "I" and not goes_on):
            start, kind = place, name
        elif not prefix and tag != "O":
            spans.add((place, place, name))
    return spans


def tagging(predicted: torch.Tensor, y: torch.Tensor, classes: list[str]) -> dict[str, float]:
    """Accuracy over the words (targets not UNSCORED) and the entities' precision, recall
    and F1 (micro-averaged over all entities) of tag indices `predicted` for `y`, both
    (sentences, steps)."""
    scored = y != UNSCORED
    accuracy = float((predicted[scored] == y[scored]).double().mean()) if scored.any() else 0.0
    found = actual = right = 0
    for guesses, truths, marks in zip(predicted.tolist(), y.tolist(), scored.tolist(), strict=True):
        words = [place for place, mark in enumerate(marks) if mark]
        guessed = entity_spans([classes[guesses[place]] for place in words])
        true = entity_spans([classes[truths[place]] for place in words])
        found, actual, right = found + len(guessed), actual + len(true), right + len(guessed & true)
    precision = right / found if found else 0.0
    recall = right / actual if actual else 0.0
    f1 = 2 * precision * recall / (precision + recall) if right else 0.0
    return {"acc": accuracy, "precision": precision, "recall": recall, "f1": f1}
