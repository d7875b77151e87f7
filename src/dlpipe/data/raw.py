"""What a data source hands to the prepare stage, before splitting and normalising."""

from dataclasses import dataclass

import numpy as np

TASKS = ("classification", "regression", "forecasting", "multitask")
HEAD_TASKS = ("classification", "regression")


@dataclass(frozen=True)
class RawData:
    """Samples of one data set.

    Attributes:
        x: float32 features, first axis the samples: (n, features), (n, steps, features)
            or (n, channels, height, width).
        y: int64 class indices (classification), or float32 targets shaped (n, outputs).
            Multi-task: float32 (n, columns), each head's columns side by side (a class
            index takes one column).
        task: one of TASKS. Forecasting samples are windows of a series in time order:
            they are split by time, never shuffled across splits.
        classes: the class names, index by index (classification only).
        heads: multi-task only: per target, its name, task (classification or regression),
            classes, y columns and model outputs (see `multitask`).
    """

    x: np.ndarray
    y: np.ndarray
    task: str
    classes: list[str] | None = None
    heads: list[dict] | None = None

    @property
    def num_outputs(self) -> int:
        if self.task == "multitask":
            return sum(head["outputs"] for head in self.heads)
        if self.task == "classification":
            return class_outputs(self.classes)
        return self.y.shape[1]


def class_outputs(classes: list[str]) -> int:
    """Two classes need one output (the logit of the second); more need one each."""
    return 1 if len(classes) == 2 else len(classes)


def class_indices(labels: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Any labels -> (int64 indices into the sorted distinct labels, those labels as names)."""
    names, indices = np.unique(labels, return_inverse=True)
    return indices.astype(np.int64), [str(name) for name in names]


@dataclass(frozen=True)
class Target:
    """One target of multi-task data: class indices (n,) with their names, or values (n, k)."""

    name: str
    values: np.ndarray
    classes: list[str] | None = None

    @property
    def task(self) -> str:
        return "classification" if self.classes is not None else "regression"


def multitask(x: np.ndarray, targets: list[Target]) -> RawData:
    """Data with several targets, learnt together by heads on one shared body."""
    columns, heads = [], []
    for target in targets:
        values = target.values.reshape(len(x), -1).astype(np.float32)
        columns.append(values)
        heads.append(
            {
                "name": target.name,
                "task": target.task,
                "classes": target.classes,
                "columns": values.shape[1],
                "outputs": (class_outputs(target.classes) if target.classes else values.shape[1]),
            }
        )
    return RawData(x=x, y=np.concatenate(columns, axis=1), task="multitask", heads=heads)


def head_slices(heads: list[dict], axis: str) -> dict[str, slice]:
    """Each head's part of multi-task data: of y's `columns` or of the model's `outputs`."""
    slices, start = {}, 0
    for head in heads:
        slices[head["name"]] = slice(start, start + head[axis])
        start += head[axis]
    return slices
