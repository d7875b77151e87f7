"""Test metrics per task, from torchmetrics, in the data's own units.

Classification: loss, accuracy, F1 (and AUROC for two classes) and the confusion matrix.
Regression and forecasting: MSE, RMSE, MAE and R^2 after undoing the prepare stage's
standardisation; forecasting adds the last-value baseline's RMSE and the skill over it
(1 - rmse / baseline_rmse: 0.15 means 15% below the baseline's error).
Reconstruction: MSE on the (standardised) inputs, against PCA with as many components as
the model's latent size, fitted on the training split.
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
