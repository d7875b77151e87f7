"""What a data source hands to the prepare stage, before splitting and normalising."""

from dataclasses import dataclass

import numpy as np

from dlpipe.errors import DataError

TASKS = ("classification", "regression", "forecasting", "multitask")
HEAD_TASKS = ("classification", "regression")
# Prepared data holds its values (all but class indices) as float32.
FLOAT32_MAX = float(np.finfo(np.float32).max)
BEYOND_FLOAT32 = f"beyond float32's range (±{FLOAT32_MAX:.1e}), the type data is prepared in"


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
        pixel_range: images only: the value of a pixel at full intensity in x, to which a
            served model scales the 8-bit images it is given.
        split: the split each sample belongs to ('train', 'val' or 'test'), where the data
            says so itself (a split column); None lets the prepare stage split it.
        padded: sequences (n, steps, features) of different lengths, each padded at its
            end with steps whose every feature is NaN (see `padding_steps`).
        features: tables only: what each of x's columns is, [column, None] for a number,
            [column, category] for a one-hot code; a test or validation file's columns are
            matched onto the training file's by it.
    """

    x: np.ndarray
    y: np.ndarray
    task: str
    classes: list[str] | None = None
    heads: list[dict] | None = None
    pixel_range: float | None = None
    split: np.ndarray | None = None
    padded: bool = False
    features: list[list] | None = None

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
    y, heads = stacked(targets, len(x))
    return RawData(x=x, y=y, task="multitask", heads=heads)


def stacked(targets: list[Target], samples: int) -> tuple[np.ndarray, list[dict]]:
    """The targets' values side by side, float32 (samples, columns), and each one's head."""
    columns, heads = [], []
    for target in targets:
        values = target.values.reshape(samples, -1).astype(np.float32)
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
    return np.concatenate(columns, axis=1), heads


def head_slices(heads: list[dict], axis: str) -> dict[str, slice]:
    """Each head's part of multi-task data: of y's `columns` or of the model's `outputs`."""
    slices, start = {}, 0
    for head in heads:
        slices[head["name"]] = slice(start, start + head[axis])
        start += head[axis]
    return slices


def from_arrays(x: np.ndarray, y: np.ndarray, task: str, where: str) -> RawData:
    """Samples `x` with labels (classification) or targets (regression) `y`, checked: as
    many of each, none NaN or infinite, values float32 can hold. `where` names the data
    in messages. A label may be any finite value or text: each distinct one is a class."""
    if len(x) == len(y) == 0:
        raise DataError(f"{where} holds no samples")
    if len(x) != len(y):
        raise DataError(f"{where}: x has {len(x)} samples and y {len(y)}; they must match")
    x = check_stored(x.reshape(len(x), -1) if x.ndim == 1 else x, "x", where)
    if task == "regression":
        return RawData(x=x, y=check_stored(y.reshape(len(y), -1), "y", where), task=task)
    if np.issubdtype(y.dtype, np.floating):  # a NaN label would become a class of its own
        bad = np.flatnonzero(~np.isfinite(y.reshape(len(y), -1)).all(axis=1))
        if len(bad):
            raise DataError(
                f"{where}: y of sample {bad[0]} holds NaN or inf; fix or drop that sample"
            )
    indices, classes = class_indices(y)
    return RawData(x=x, y=indices, task=task, classes=classes)


def as_stored(values: np.ndarray) -> tuple[np.ndarray, int | None]:
    """`values` as float32, and the first sample (along the first axis) left NaN or inf.

    Checked after the cast, not before: 1e308 is finite in float64 and inf in float32.
    """
    with np.errstate(over="ignore", invalid="ignore"):  # what overflows is found below
        stored = np.asarray(values).astype(np.float32, copy=False)
    bad = np.flatnonzero(~np.isfinite(stored.reshape(len(stored), -1)).all(axis=1))
    return stored, (int(bad[0]) if len(bad) else None)


def check_stored(values: np.ndarray, name: str, where: str) -> np.ndarray:
    """`values` as float32, or a DataError naming `where` (the data), the array `name` and
    its first sample holding NaN or inf, or a value float32 cannot hold."""
    stored, row = as_stored(values)
    if row is None:
        return stored
    raise DataError(f"{where}: {name} of sample {row} holds {_problem(values[row], '')}")


def check_padded(values: np.ndarray, name: str, where: str) -> np.ndarray:
    """As `check_stored`, for sequences padded at their end with all-NaN steps: those
    steps pass; any other NaN or inf (within a step, or before a step of numbers) does not."""
    stored = as_stored(values)[0]
    row = misplaced_padding(stored)
    if row is None:
        return stored
    padding = " other than padding at its end (steps of all NaN)"
    raise DataError(f"{where}: {name} of sample {row} holds {_problem(values[row], padding)}")


def _problem(sample: np.ndarray, padding: str) -> str:
    sample = np.asarray(sample, dtype=np.float64).ravel()
    huge = sample[np.isfinite(sample) & (np.abs(sample) > FLOAT32_MAX)]
    if len(huge):
        return f"{huge[0]:g}, {BEYOND_FLOAT32}; rescale the data or fix that sample"
    return f"NaN or inf{padding}; fix or drop that sample"


def padding_steps(x: np.ndarray) -> np.ndarray:
    """(samples, steps): True for a step whose every feature is NaN, which pads a
    sequence shorter than the longest to their common length."""
    return np.isnan(x).all(axis=2)


def misplaced_padding(x: np.ndarray) -> int | None:
    """The first sample of sequences `x` (samples, steps, features) whose NaN or inf is no
    padding at its end: a NaN beside numbers in a step, an all-NaN step before a step of
    numbers, an infinite value, or padding only. None when there is none."""
    padding = padding_steps(x)
    # True where this step and every later one is padding.
    trailing = np.flip(np.logical_and.accumulate(np.flip(padding, axis=1), axis=1), axis=1)
    values = np.where(padding[..., None], 0.0, x)
    bad = (
        (padding != trailing).any(axis=1)
        | trailing[:, 0]
        | ~np.isfinite(values.reshape(len(x), -1)).all(axis=1)
    )
    found = np.flatnonzero(bad)
    return int(found[0]) if len(found) else None


def feature_axes(x: np.ndarray) -> tuple[int, ...]:
    """Axes to average over: all but the channels of images, all but the features otherwise."""
    return (0, 2, 3) if x.ndim == 4 else tuple(range(x.ndim - 1))
