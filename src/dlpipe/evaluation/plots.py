"""Plot data for `dvc plots` (CSV) and the same plots as PNG images for MLflow."""

import csv
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display here, and none needed
import matplotlib.pyplot as plt
import numpy as np

from dlpipe import files


def write_csv(path: Path, header: list[str], rows: list[list]) -> None:
    with files.atomic_path(path) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)


def _save(figure: plt.Figure, path: Path) -> None:
    with files.atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(figure)


def _named(folder: Path, name: str, head: str | None) -> Path:
    """folder/name, or folder/<head>_name for one head of a multi-task model."""
    return folder / (f"{head}_{name}" if head else name)


def confusion(
    actual: np.ndarray,
    predicted: np.ndarray,
    matrix: np.ndarray,
    classes: list[str],
    folder: Path,
    head: str | None = None,
) -> list[Path]:
    """confusion.csv (one row per test sample, DVC's confusion template) and confusion.png."""
    rows = [[classes[a], classes[p]] for a, p in zip(actual, predicted, strict=True)]
    table, image_file = _named(folder, "confusion.csv", head), _named(folder, "confusion.png", head)
    write_csv(table, ["actual", "predicted"], rows)
    figure, axes = plt.subplots(figsize=(5, 4.5))
    image = axes.imshow(matrix, cmap="Blues")
    axes.set(
        xticks=range(len(classes)),
        yticks=range(len(classes)),
        xticklabels=classes,
        yticklabels=classes,
        xlabel="predicted",
        ylabel="actual",
        title=f"Confusion matrix{f' of {head}' if head else ''}",
    )
    for (row, col), count in np.ndenumerate(matrix):
        axes.text(
            col,
            row,
            str(count),
            ha="center",
            va="center",
            fontsize=7,
            color="white" if count > matrix.max() / 2 else "black",
        )
    figure.colorbar(image, ax=axes)
    _save(figure, image_file)
    return [table, image_file]


def learning_curves(history: list[dict], folder: Path, metrics: Sequence[str]) -> list[Path]:
    """learning_curves.csv (one row per epoch) and learning_curves.png: a panel per metric
    the task logs (`metrics`, by last name: loss, acc, a task's own), its train/ and val/
    curves in it, of each head of a multi-task model too."""
    keys = _curve_keys(history, metrics)
    rows = [[row["epoch"], *(row.get(key, "") for key in keys)] for row in history]
    write_csv(folder / "learning_curves.csv", ["epoch", *keys], rows)
    drawn = [metric for metric in metrics if any(_last(key) == metric for key in keys)]
    figure, panels = plt.subplots(1, len(drawn), figsize=(4.5 * len(drawn), 3.5), squeeze=False)
    for panel, metric in zip(panels[0], drawn, strict=True):
        for key in (k for k in keys if _last(k) == metric):
            epochs = [row["epoch"] for row in history if key in row]
            panel.plot(epochs, [row[key] for row in history if key in row], label=key)
        panel.set(xlabel="epoch", ylabel=metric, title=metric)
        panel.legend()
    _save(figure, folder / "learning_curves.png")
    return [folder / "learning_curves.csv", folder / "learning_curves.png"]


def _last(key: str) -> str:
    return key.rsplit("/", 1)[-1]


def _curve_keys(history: list[dict], metrics: Sequence[str]) -> list[str]:
    """The train/ and val/ keys of `metrics` in `history` (val/loss, val/digit/acc), by
    metric."""
    logged = dict.fromkeys(key for row in history for key in row)
    keys = [
        key for key in logged if key.split("/")[0] in ("train", "val") and _last(key) in metrics
    ]
    return sorted(keys, key=lambda key: (list(metrics).index(_last(key)), key))


def predicted_vs_actual(
    actual: np.ndarray, predicted: np.ndarray, folder: Path, head: str | None = None
) -> list[Path]:
    """predictions.csv (one row per test sample and output) and predicted_vs_actual.png."""
    rows = [
        [sample, output, a, p]
        for sample, (row_a, row_p) in enumerate(zip(actual, predicted, strict=True))
        for output, (a, p) in enumerate(zip(row_a, row_p, strict=True))
    ]
    table, image_file = (
        _named(folder, "predictions.csv", head),
        _named(folder, "predicted_vs_actual.png", head),
    )
    write_csv(table, ["sample", "output", "actual", "predicted"], rows)
    figure, (scatter, series) = plt.subplots(1, 2, figsize=(9, 3.5))
    low, high = float(min(actual.min(), predicted.min())), float(max(actual.max(), predicted.max()))
    scatter.scatter(actual.ravel(), predicted.ravel(), s=8, alpha=0.6)
    scatter.plot([low, high], [low, high], color="grey", linewidth=1)
    scatter.set(xlabel="actual", ylabel="predicted", title="Predicted against actual")
    series.plot(actual[:, 0], label="actual")
    series.plot(predicted[:, 0], label="predicted")
    series.set(xlabel="test sample", ylabel="value", title="First output, in test order")
    series.legend()
    _save(figure, image_file)
    return [table, image_file]


def reconstructions(x: np.ndarray, rebuilt: np.ndarray, folder: Path, count: int = 8) -> list[Path]:
    """reconstructions.png: the first `count` test inputs (top) over their reconstructions.

    Images are drawn as images (their first channel), anything else as a line."""
    figure, panels = plt.subplots(2, count, figsize=(1.4 * count, 3), squeeze=False)
    for column in range(min(count, len(x))):
        for row, sample in enumerate((x[column], rebuilt[column])):
            panel = panels[row][column]
            if sample.ndim == 3:
                panel.imshow(sample[0], cmap="gray")
            else:
                panel.plot(sample.ravel())
            panel.set_axis_off()
    panels[0][0].set_title("input", loc="left", fontsize=8)
    panels[1][0].set_title("reconstruction", loc="left", fontsize=8)
    _save(figure, folder / "reconstructions.png")
    return [folder / "reconstructions.png"]


def samples(generated: np.ndarray, folder: Path, count: int = 16) -> list[Path]:
    """samples.png: the first `count` generated samples, images as images (first channel)."""
    columns = 8
    rows = -(-min(count, len(generated)) // columns)
    figure, panels = plt.subplots(rows, columns, figsize=(1.2 * columns, 1.2 * rows), squeeze=False)
    for index, panel in enumerate(panels.ravel()):
        panel.set_axis_off()
        if index < min(count, len(generated)):
            sample = generated[index]
            if sample.ndim == 3:
                panel.imshow(sample[0], cmap="gray")
            else:
                panel.plot(sample.ravel())
    _save(figure, folder / "samples.png")
    return [folder / "samples.png"]


def positive_probability(scores: np.ndarray) -> np.ndarray:
    """The probability of the second class from a binary model's scores: a single logit, or
    one logit per class (a softmax of two is the sigmoid of their difference)."""
    logit = scores[:, 0] if scores.shape[1] == 1 else scores[:, 1] - scores[:, 0]
    return 1 / (1 + np.exp(-logit))


def roc_pr(
    actual: np.ndarray,
    probability: np.ndarray,
    classes: list[str],
    folder: Path,
    head: str | None = None,
) -> list[Path]:
    """roc.csv and roc.png, pr.csv and pr.png: the ROC and precision-recall curves of a
    binary classifier's `probability` of classes[1], against the `actual` class indices."""
    # Imported here: torch takes seconds to load, and no other plot here needs it.
    import torch
    from torchmetrics.functional.classification import (
        binary_auroc,
        binary_average_precision,
        binary_precision_recall_curve,
        binary_roc,
    )

    scores, target = torch.as_tensor(probability, dtype=torch.float64), torch.as_tensor(actual)
    fpr, tpr, roc_thresholds = binary_roc(scores, target)
    precision, recall, pr_thresholds = binary_precision_recall_curve(scores, target)
    of = f"{classes[1]}{f' of {head}' if head else ''}"
    roc = _curve(
        _named(folder, "roc", head),
        (fpr.numpy(), tpr.numpy(), roc_thresholds.numpy()),
        ("false positive rate", "true positive rate"),
        f"ROC of {of}, AUC {float(binary_auroc(scores, target)):.3f}",
        chance_line=True,
    )
    pr = _curve(
        _named(folder, "pr", head),
        # The last point (precision 1, recall 0) has no threshold: the curve starts there.
        (recall.numpy(), precision.numpy(), np.append(pr_thresholds.numpy(), np.nan)),
        ("recall", "precision"),
        f"Precision-recall of {of}, AP {float(binary_average_precision(scores, target)):.3f}",
    )
    return roc + pr


def _curve(
    stem: Path,
    curve: tuple[np.ndarray, np.ndarray, np.ndarray],
    axis_names: tuple[str, str],
    title: str,
    chance_line: bool = False,
) -> list[Path]:
    """<stem>.csv (x, y and threshold of each point) and <stem>.png of a threshold curve;
    a ROC curve gets the diagonal of guessing, a precision-recall curve steps (as its
    precision holds between thresholds)."""
    table, image_file = stem.with_suffix(".csv"), stem.with_suffix(".png")
    header = [*(axis.replace(" ", "_") for axis in axis_names), "threshold"]
    write_csv(table, header, [list(point) for point in zip(*curve, strict=True)])
    figure, axes = plt.subplots(figsize=(4.5, 4))
    if chance_line:
        axes.plot(curve[0], curve[1])
        axes.plot([0, 1], [0, 1], color="grey", linewidth=1, linestyle="--")
    else:
        axes.plot(curve[0], curve[1], drawstyle="steps-post")
    axes.set(xlabel=axis_names[0], ylabel=axis_names[1], xlim=(0, 1), ylim=(0, 1.02))
    axes.set_title(title, fontsize=9)
    _save(figure, image_file)
    return [table, image_file]


def residuals(
    actual: np.ndarray, predicted: np.ndarray, folder: Path, head: str | None = None
) -> list[Path]:
    """residuals.png: each test prediction's error (predicted - actual) against the
    prediction, where a pattern shows what the model misses, and their histogram."""
    errors = (predicted - actual).ravel()
    figure, (scatter, histogram) = plt.subplots(1, 2, figsize=(9, 3.5))
    scatter.scatter(predicted.ravel(), errors, s=8, alpha=0.6)
    scatter.axhline(0, color="grey", linewidth=1)
    scatter.set(xlabel="predicted", ylabel="predicted - actual", title="Residuals")
    histogram.hist(errors, bins=30)
    histogram.axvline(0, color="grey", linewidth=1)
    histogram.set(xlabel="predicted - actual", ylabel="test samples", title="Their distribution")
    image_file = _named(folder, "residuals.png", head)
    _save(figure, image_file)
    return [image_file]


def forecasts(actual: np.ndarray, predicted: np.ndarray, folder: Path) -> list[Path]:
    """forecasts.png: the test series against the forecasts made for it.

    Row i of `actual` and `predicted` holds the `horizon` steps after test window i; the
    windows are in time order, one step apart, so step k of row i falls at time i + k.
    The forecasts one step ahead are drawn, and the furthest ones when the horizon is longer.
    """
    count, horizon = actual.shape
    series = np.concatenate([actual[:, 0], actual[-1, 1:]])
    figure, axes = plt.subplots(figsize=(9, 3.5))
    axes.plot(series, color="black", linewidth=1.5, label="actual")
    for step in sorted({0, horizon - 1}):
        axes.plot(
            np.arange(count) + step,
            predicted[:, step],
            linewidth=1,
            label=f"forecast {step + 1} step{'s' if step else ''} ahead",
        )
    axes.set(xlabel="test step, in time order", ylabel="value", title="Forecasts against actuals")
    axes.legend()
    image_file = folder / "forecasts.png"
    _save(figure, image_file)
    return [image_file]
