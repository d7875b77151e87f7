"""Prepared data, checked as it is loaded: a damaged or hand-edited split is named with its
file and what is wrong, before a training or an evaluation uses it.

Each check is one vectorised pass over a split's tensors, cheap next to a single epoch.
The prepare stage checks the source data, so rerunning it is the fix for each of them.
"""

from pathlib import Path

import torch

from dlpipe.data.raw import head_slices, misplaced_padding
from dlpipe.data.tokenise import UNSCORED
from dlpipe.errors import DataError

RERUN_PREPARE = "rerun the prepare stage: `dvc repro prepare` or `python pipelines/prepare.py`"
# What the checks, training and evaluation read from meta.json.
META_KEYS = ("task", "input_shape", "num_outputs", "classes", "sizes", "hash")


def check_meta(meta: object, path: Path) -> None:
    """meta.json must be an object holding every key of META_KEYS."""
    missing = [key for key in META_KEYS if key not in meta] if isinstance(meta, dict) else META_KEYS
    if missing:
        raise DataError(f"prepared data file {path} lacks {', '.join(missing)}: {RERUN_PREPARE}")


def check_split(path: Path, x: torch.Tensor, y: torch.Tensor, meta: dict) -> None:
    """One split's inputs `x` and targets `y` must fit each other and meta.json.

    Raises:
        DataError: the split is empty, x and y differ in length, a sample or target has
            another shape than meta.json says, a value is NaN or infinite (but the
            padding of padded sequences, steps of all NaN at their end), or a class
            label is not one of the data's classes.
    """
    problem = (
        _sizes(x, y)
        or _shapes(x, y, meta)
        or (_misplaced_padding(x) if meta.get("padded") else _non_finite(x, "x"))
        or _non_finite(y, "y")
        or _bad_labels(y, meta)
        or _bad_tokens(x, y, meta)
    )
    if problem:
        raise DataError(f"prepared data file {path}: {problem}: {RERUN_PREPARE}")


def check_folds(path: Path, fold: torch.Tensor | None, rows: int, folds: int) -> None:
    """Data prepared with data.split.folds: each of a split's `rows` has a fold 0..folds-1.

    Raises:
        DataError: the split has no folds, another number of them than rows, or a fold
            that is not a whole number of 0 to folds-1.
    """
    problem = ""
    if fold is None:
        problem = f"it holds no folds, but meta.json says it was split into {folds}"
    elif fold.ndim != 1 or len(fold) != rows:
        problem = f"it holds {tuple(fold.shape)} folds for {rows} samples; they must match"
    elif fold.is_floating_point() or fold.dtype == torch.bool:
        problem = f"its folds are {fold.dtype} values, but must be integers"
    elif bool(((fold < 0) | (fold >= folds)).any()):
        row = int(((fold < 0) | (fold >= folds)).nonzero()[0])
        problem = f"fold {int(fold[row])} of sample {row} is not one of 0 to {folds - 1}"
    if problem:
        raise DataError(f"prepared data file {path}: {problem}: {RERUN_PREPARE}")


def _sizes(x: torch.Tensor, y: torch.Tensor) -> str:
    if x.ndim == 0 or y.ndim == 0:
        return "x and y must hold one row per sample"
    if len(x) == 0 or len(y) == 0:
        return f"it holds no samples (x has {len(x)}, y {len(y)})"
    if len(x) != len(y):
        return f"x holds {len(x)} samples and y {len(y)}; they must match"
    return ""


def _shapes(x: torch.Tensor, y: torch.Tensor, meta: dict) -> str:
    inputs, targets = tuple(x.shape[1:]), tuple(y.shape[1:])
    if inputs != tuple(meta["input_shape"]):
        return f"samples are shaped {inputs}, but meta.json's input_shape is {meta['input_shape']}"
    if meta["task"] == "classification":
        if targets != ():
            return f"targets are shaped {targets}, but classification needs one class index"
        return ""
    expected = _values_shape(meta)
    if targets != expected:
        return f"targets are shaped {targets}, but {meta['task']} data needs {expected}"
    return ""


def _values_shape(meta: dict) -> tuple[int]:
    """A sample's row of target values; multi-task: each head's columns side by side; a
    language model's: the next token at each step; tagged words': a tag at each step."""
    if meta["task"] in ("language_model", "token_classification"):
        return tuple(meta["input_shape"])
    if meta["task"] == "multitask":
        return (sum(head["columns"] for head in meta["heads"]),)
    return (meta["num_outputs"],)


def _non_finite(values: torch.Tensor, name: str) -> str:
    if not values.is_floating_point():
        return ""  # integers cannot be NaN or infinite
    bad = ~torch.isfinite(values.reshape(len(values), -1)).all(dim=1)
    if not bad.any():
        return ""
    return f"{name} of sample {int(bad.nonzero()[0])} holds NaN or inf"


def _misplaced_padding(x: torch.Tensor) -> str:
    """Padded sequences may end in all-NaN steps; any other NaN or inf is damage."""
    row = misplaced_padding(x.numpy()) if x.ndim == 3 else None
    if row is None:
        return "" if x.ndim == 3 else _non_finite(x, "x")
    return f"x of sample {row} holds NaN or inf other than padding at its end (steps of all NaN)"


def _bad_labels(y: torch.Tensor, meta: dict) -> str:
    """The first label that is not a class index: of y, or of each multi-task class head."""
    if meta["task"] == "classification":
        if y.is_floating_point() or y.dtype == torch.bool:
            return f"y holds {y.dtype} values, but class labels must be integers"
        return _off_classes(y, len(meta["classes"]), "")
    if meta["task"] == "token_classification":
        return _bad_tags(y, len(meta["classes"]))
    if meta["task"] != "multitask":
        return ""
    columns = head_slices(meta["heads"], "columns")
    for head in meta["heads"]:
        if head["task"] == "classification":
            labels = y[:, columns[head["name"]].start]
            found = _off_classes(labels, len(head["classes"]), f"head '{head['name']}': ")
            if found:
                return found
    return ""


def _bad_tokens(x: torch.Tensor, y: torch.Tensor, meta: dict) -> str:
    """Token ids (of text data) must be integers below the vocabulary's size."""
    if "text" not in meta:
        return ""
    size = meta["text"]["vocab_size"]
    tokens = [("x", x), *([("y", y)] if meta["task"] == "language_model" else [])]
    for name, ids in tokens:
        if ids.is_floating_point() or ids.dtype == torch.bool:
            return f"{name} holds {ids.dtype} values, but token ids must be integers"
        off = (ids < 0) | (ids >= size)
        if name == "y":  # a target an earlier window scored
            off &= ids != UNSCORED
        bad = off.reshape(len(ids), -1).any(dim=1)
        if bad.any():
            return (
                f"{name} of sample {int(bad.nonzero()[0])} holds a token id outside 0 to {size - 1}"
            )
    return ""


def _bad_tags(y: torch.Tensor, count: int) -> str:
    """The first tag that is neither a class index nor UNSCORED (a step that is no
    word's first piece)."""
    if y.is_floating_point() or y.dtype == torch.bool:
        return f"y holds {y.dtype} values, but tags must be integers"
    bad = ((y < 0) | (y >= count)) & (y != UNSCORED)
    if not bad.any():
        return ""
    row, step = (int(index) for index in bad.nonzero()[0])
    return (
        f"tag {int(y[row, step])} at step {step} of sample {row} is not a tag index (0 to "
        f"{count - 1} for {count} tags, or {UNSCORED}: not scored)"
    )


def _off_classes(labels: torch.Tensor, count: int, where: str) -> str:
    bad = (labels < 0) | (labels >= count)
    if labels.is_floating_point():  # a multi-task class column holds indices as floats
        bad |= labels != labels.round()
    if not bad.any():
        return ""
    row = int(bad.nonzero()[0])
    return (
        f"{where}label {labels[row].item():g} of sample {row} is not a class index "
        f"(0 to {count - 1} for {count} classes)"
    )
