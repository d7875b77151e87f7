"""Plot data for `dvc plots` (CSV) and the same plots as PNG images for MLflow."""

import csv
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display here, and none needed
import matplotlib.pyplot as plt
import numpy as np

from dlpipe import files

CURVE_KINDS = ("loss", "acc", "mae")


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


def learning_curves(history: list[dict], folder: Path) -> list[Path]:
    """learning_curves.csv (one row per epoch) and learning_curves.png (loss, and accuracy or
    mean absolute error, of each head of a multi-task model too)."""
    keys = _curve_keys(history)
    rows = [[row["epoch"], *(row.get(key, "") for key in keys)] for row in history]
    write_csv(folder / "learning_curves.csv", ["epoch", *keys], rows)
    kinds = [kind for kind in CURVE_KINDS if any(key.endswith(kind) for key in keys)]
    figure, panels = plt.subplots(1, len(kinds), figsize=(4.5 * len(kinds), 3.5), squeeze=False)
    for panel, kind in zip(panels[0], kinds, strict=True):
        for key in (k for k in keys if k.endswith(kind)):
            epochs = [row["epoch"] for row in history if key in row]
            panel.plot(epochs, [row[key] for row in history if key in row], label=key)
        panel.set(xlabel="epoch", ylabel=kind, title=kind)
        panel.legend()
    _save(figure, folder / "learning_curves.png")
    return [folder / "learning_curves.csv", folder / "learning_curves.png"]


def _curve_keys(history: list[dict]) -> list[str]:
    """train/ and val/ losses, accuracies and errors (val/loss, val/digit/acc), by kind."""
    logged = dict.fromkeys(key for row in history for key in row)
    keys = [
        key
        for key in logged
        if key.split("/")[0] in ("train", "val") and key.rsplit("/", 1)[-1] in CURVE_KINDS
    ]
    return sorted(keys, key=lambda key: (CURVE_KINDS.index(key.rsplit("/", 1)[-1]), key))


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
