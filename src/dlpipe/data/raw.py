"""What a data source hands to the prepare stage, before splitting and normalising."""

from dataclasses import dataclass

import numpy as np

TASKS = ("classification", "regression", "forecasting")


@dataclass(frozen=True)
class RawData:
    """Samples of one data set.

    Attributes:
        x: float32 features, first axis the samples: (n, features), (n, steps, features)
            or (n, channels, height, width).
        y: int64 class indices (classification), or float32 targets shaped (n, outputs).
        task: one of TASKS. Forecasting samples are windows of a series in time order:
            they are split by time, never shuffled across splits.
        classes: the class names, index by index (classification only).
    """

    x: np.ndarray
    y: np.ndarray
    task: str
    classes: list[str] | None = None

    @property
    def num_outputs(self) -> int:
        if self.task == "classification":
            # Two classes need one output: the logit of the second.
            return 1 if len(self.classes) == 2 else len(self.classes)
        return self.y.shape[1]


def class_indices(labels: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Any labels -> (int64 indices into the sorted distinct labels, those labels as names)."""
    names, indices = np.unique(labels, return_inverse=True)
    return indices.astype(np.int64), [str(name) for name in names]
