"""Raw inputs to what the network was trained on, and its outputs to predictions.

The prepare stage one-hot encodes a table's categorical columns and standardises the
inputs with the training split's statistics (or z-normalises each series on its own, with
`data.normalise: series`); the same is done here, with the statistics kept in the model's
settings. Padded sequences may end in steps of all NaN, as the training data did.
Predictions are in the data's own terms: class names with per-class probabilities,
regression values in the targets' units.
"""

import math

import numpy as np
import pandas as pd
import torch

from dlpipe.errors import DataError
from dlpipe.serving import text
from dlpipe.tasks.metrics import predicted_classes, unscale


def model_input(settings: dict, raw: pd.DataFrame | np.ndarray) -> torch.Tensor:
    """Raw inputs (a table's rows, or arrays of samples) as the network's standardised input;
    texts as their token ids."""
    if settings.get("text"):
        return text.token_ids(settings, raw)
    if settings["columns"]:
        x = encode_table(raw, settings["columns"])
    else:
        x = as_samples(raw, settings["input_shape"], settings.get("padded", False))
    if not len(x):
        raise DataError("holds no samples")
    if settings.get("series_normalised"):
        from dlpipe.data.sequences import z_normalised

        x = z_normalised(x)
    if "x_mean" in settings["stats"]:
        x = (x - _stat(settings, "x_mean")) / _stat(settings, "x_std")
    return torch.from_numpy(x.astype(np.float32))


def raw_inputs(settings: dict, x: torch.Tensor) -> pd.DataFrame | np.ndarray:
    """Prepared (standardised) inputs back as raw ones: the model's input example."""
    if settings.get("text"):
        return text.as_texts(settings, x)
    values = x.numpy().astype(np.float64)
    if "x_mean" in settings["stats"]:
        values = values * _stat(settings, "x_std") + _stat(settings, "x_mean")
    if settings["columns"]:
        return decode_table(values, settings["columns"])
    return values.astype(np.float32)


def _stat(settings: dict, key: str) -> np.ndarray:
    return np.asarray(settings["stats"][key], dtype=np.float64)


def encode_table(frame: pd.DataFrame, columns: list[dict]) -> np.ndarray:
    """A table's feature columns as numbers: numeric ones as they are, categorical ones
    one-hot over the categories the model was trained with."""
    missing = [column["name"] for column in columns if column["name"] not in frame.columns]
    if missing:
        taken = ", ".join(column["name"] for column in columns)
        raise DataError(f"lacks column(s) {', '.join(missing)}: the model takes {taken}")
    parts = []
    for column in columns:
        values, categories = frame[column["name"]], column["categories"]
        if categories is None:
            parts.append(numbers(values)[:, None])
            continue
        codes = values.astype(str).map({name: i for i, name in enumerate(categories)})
        if codes.isna().any():
            row = int(np.flatnonzero(codes.isna())[0])
            raise DataError(
                f"column '{column['name']}', row {row + 1}: {_cell(values.iloc[row])} is not "
                f"one of the categories the model was trained with ({', '.join(categories)})"
            )
        parts.append(np.eye(len(categories))[codes.to_numpy(dtype=np.int64)])
    return np.concatenate(parts, axis=1)


def numbers(values: pd.Series, empty: bool = False) -> np.ndarray:
    """A column as float64, or a DataError naming the first value that is no finite number;
    `empty`: an empty cell is NaN (the end of a padded series, checked by `as_samples`)."""
    numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64)
    given = values.notna().to_numpy() if empty else True
    bad = np.flatnonzero(~np.isfinite(numbers) & given)
    if len(bad):
        row = int(bad[0])
        raise DataError(
            f"column '{values.name}', row {row + 1}: {_cell(values.iloc[row])} is not a finite "
            "number"
        )
    return numbers


def _cell(value: object) -> str:
    if pd.isna(value):
        return "an empty value"
    return repr(value.item() if isinstance(value, np.generic) else value)


def decode_table(x: np.ndarray, columns: list[dict]) -> pd.DataFrame:
    """Encoded features back as the table's columns: each one-hot block as its category."""
    frame, start = {}, 0
    for column in columns:
        categories = column["categories"]
        if categories is None:
            frame[column["name"]], start = x[:, start], start + 1
        else:
            block = x[:, start : start + len(categories)]
            frame[column["name"]] = [categories[index] for index in block.argmax(axis=1)]
            start += len(categories)
    return pd.DataFrame(frame)


def as_samples(x: np.ndarray, shape: list[int], padded: bool = False) -> np.ndarray:
    """`x` as samples of `shape`: given so, or each flattened into one row of values.
    `padded`: sequences may end in steps of all NaN, a series shorter than the longest."""
    x = np.asarray(x, dtype=np.float64)
    size = math.prod(shape)
    if x.ndim == 2 and x.shape[1] == size:
        x = x.reshape(len(x), *shape)
    if list(x.shape[1:]) != list(shape):
        raise DataError(
            f"holds samples shaped {dims(x.shape[1:])}: the model takes {dims(shape)} inputs "
            f"(or rows of {size} values, flattened)"
        )
    if padded and x.ndim == 3:
        from dlpipe.data.raw import misplaced_padding

        row = misplaced_padding(x) if len(x) else None
        if row is not None:
            raise DataError(
                f"sample {row + 1} holds NaN or inf other than at its end: give finite values, "
                "a shorter series ending in steps of all NaN (empty cells)"
            )
        return x
    bad = np.flatnonzero(~np.isfinite(x.reshape(len(x), -1)).all(axis=1))
    if len(bad):
        raise DataError(f"sample {bad[0] + 1} holds NaN or inf: give finite values")
    return x


def dims(shape) -> str:
    return "x".join(map(str, shape)) or "scalar"


def predictions(settings: dict, outputs: torch.Tensor) -> pd.DataFrame:
    """The network's outputs as a table: for classification the class and each class's
    probability, for regression the values in the targets' units; a column set per head."""
    task, stats = settings["task"], settings["stats"]
    if task == "classification":
        return _classes(outputs, settings["classes"], "")
    if task != "multitask":
        return _values(unscale(outputs, stats), settings["targets"] or ["value"])
    from dlpipe.data.raw import head_slices

    heads = settings["heads"]
    outputs_of, columns_of = head_slices(heads, "outputs"), head_slices(heads, "columns")
    frames = []
    for head in heads:
        scores = outputs[:, outputs_of[head["name"]]]
        if head["task"] == "classification":
            frames.append(_classes(scores, head["classes"], head["name"]))
            continue
        columns = columns_of[head["name"]]
        scale = {
            key: np.asarray(value)[..., columns] for key, value in stats.items() if key[0] == "y"
        }
        frames.append(_values(unscale(scores, scale), [head["name"]]))
    return pd.concat(frames, axis=1)


def _classes(scores: torch.Tensor, classes: list[str], head: str) -> pd.DataFrame:
    """The predicted class (column `head`, or `class`) and `<head>_prob_<class>` columns."""
    if scores.shape[1] == 1:  # two classes: one logit, of the second
        second = scores[:, 0].sigmoid()
        probabilities = torch.stack([1 - second, second], dim=1)
    else:
        probabilities = scores.softmax(dim=1)
    prefix = f"{head}_prob_" if head else "prob_"
    frame = {head or "class": [classes[index] for index in predicted_classes(scores).tolist()]}
    for index, name in enumerate(classes):
        frame[f"{prefix}{name}"] = probabilities[:, index].double().numpy()
    return pd.DataFrame(frame)


def _values(values: torch.Tensor, names: list[str]) -> pd.DataFrame:
    """Regression values: one column per output, named `names` (`<name>_<i>` for several)."""
    values = values.double().numpy()
    if values.shape[1] == len(names):
        return pd.DataFrame(values, columns=names)
    (name,) = names
    return pd.DataFrame(values, columns=[f"{name}_{i}" for i in range(values.shape[1])])
