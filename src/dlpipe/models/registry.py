"""Models by `_target_`: dlpipe's families and a user's own take one path.

A model config (conf/model/<name>.yaml, or one in a config folder of the user's) names
its builder, a function or an `nn.Module` class, by `_target_: package.module.Name`, and
holds the builder's settings plus `init`, the weight initialisation applied after it is
built, and optionally `name`, its label in runs (the builder's name when left out). The
builder takes the data's `input_shape` (without the batch axis), `num_outputs` and
`vocab_size` (token data's vocabulary size, None for other data) when its signature has
them, and its settings as keyword arguments; the settings' types and ranges come from its
signature (see dlpipe.config.schema.targets), read without importing torch. A builder
reads token ids only if it takes `vocab_size`.

A builder whose model trains for a task of its own, whatever the data's (an autoencoder
reconstructs), says so with a `task` attribute: `@sets_task("reconstruction")` on a
function, `task = "reconstruction"` in a class. A language model (`language_model`)
trains on a text corpus only, and only a language model does.

This module imports no torch: the config check and `dlpipe models` use it.
"""

import inspect
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dlpipe.config.schema import targets
from dlpipe.errors import ConfigError, DlpipeError

if TYPE_CHECKING:
    from torch import nn

# What dlpipe passes a builder from the data, when its signature takes them.
PASSED = ("input_shape", "num_outputs", "vocab_size")
# Keys of a model config that are not the builder's settings.
OWN_KEYS = ("_target_", "name", "init")
# Weight initialisation schemes (dlpipe.models.init applies them).
INITS = ("default", "xavier", "kaiming", "normal")
# The task of a model that predicts each next token of a text, and of the data it reads.
LANGUAGE_MODEL = "language_model"
# The task of data with a tag per word (dlpipe.data.tagged): its model answers per token.
TOKEN_CLASSIFICATION = "token_classification"


def sets_task(task: str) -> Callable[[Callable], Callable]:
    """Mark a builder whose model trains for `task` whatever the data's."""

    def mark(builder: Callable) -> Callable:
        builder.task = task
        return builder

    return mark


def target_of(model: Mapping) -> str:
    target = model.get("_target_")
    if not isinstance(target, str) or not target:
        raise ConfigError(
            "model._target_ is missing: choose a model with model=<name> (dlpipe models lists "
            "them) or name your own with model._target_=package.module.Class"
        )
    return target


def label(model: Mapping) -> str:
    """The model's name in runs: its `name`, or its builder's."""
    return model.get("name") or target_of(model).rpartition(".")[2]


def settings(model: Mapping) -> dict[str, Any]:
    """The builder's own settings of a model config."""
    return {key: value for key, value in model.items() if key not in OWN_KEYS}


def signature(model: Mapping) -> targets.Signature:
    """The settings the model's builder takes (not `init`, `name`, `_target_`)."""
    return targets.signature(target_of(model), PASSED)


def check_model(values: Any, path: str = "model") -> dict:
    """A model config checked before torch loads: its builder found, its settings known,
    of their types and in range; `init` one of INITS."""
    if not isinstance(values, dict):
        raise ConfigError(f"{path} must be a group of settings with _target_, got {values!r}")
    target = target_of(values)
    name = values.get("name", label(values))
    if not isinstance(name, str):
        raise ConfigError(f"{path}.name must be a string, got {name!r}")
    init = values.get("init", "default")
    if init not in INITS:
        raise ConfigError(f"{path}.init must be one of {', '.join(INITS)}, got {init!r}")
    checked = targets.check_settings(
        settings(values), signature(values), path, f"model '{name}' ({target})"
    )
    return {"_target_": target, "name": name, "init": init, **checked}


def builder(model: Mapping) -> Callable:
    """The function or class that builds the model, imported."""
    return targets.load(target_of(model))


def own_task(model: Mapping) -> str | None:
    """The task the model trains for whatever the data's (see sets_task), or None."""
    return getattr(builder(model), "task", None)


def model_task(model: Mapping, data_task: str) -> str:
    """The task the model trains for on data of `data_task`: its own, or the data's.

    A language model trains on a text corpus (data of task `language_model`) only, and a
    text corpus trains a language model only: either mismatch is refused in one line."""
    own = own_task(model)
    if own == LANGUAGE_MODEL and data_task != LANGUAGE_MODEL:
        raise ConfigError(
            f"model '{label(model)}' is a language model (it predicts each next token), but "
            f"the data's task is {data_task}: train it on a text corpus (e.g. data=python_docs), "
            "or choose a model for this data"
        )
    if own != LANGUAGE_MODEL and data_task == LANGUAGE_MODEL:
        raise ConfigError(
            f"model '{label(model)}' is not a language model (it predicts one output per "
            "sample), but the data is a text corpus to predict each next token of: choose "
            "model=gpt or model=rnn_lm"
        )
    return own or data_task


def build_model(
    model: Mapping,
    input_shape: Sequence[int],
    num_outputs: int,
    vocab_size: int | None = None,
    per_token: bool = False,
) -> "nn.Module":
    """The model of a model config for data of `input_shape` and `num_outputs`, its weights
    set by its `init` scheme (see dlpipe.models.init). `vocab_size`: token data's
    vocabulary size (its samples are token ids), None for other data. `per_token`: the
    data wants `num_outputs` per token (a tag per word), not per sample."""
    from torch import nn

    from dlpipe.models.init import initialise

    checked = check_model(dict(model))
    build = builder(model)
    named = f"model '{checked['name']}' ({checked['_target_']})"
    given = {
        "input_shape": tuple(input_shape),
        "num_outputs": num_outputs,
        "vocab_size": vocab_size,
    }
    taken = inspect.signature(build).parameters
    if vocab_size is not None and "vocab_size" not in taken:
        raise ConfigError(
            f"{named} expects numbers, but the data holds token ids (texts shaped "
            f"{tuple(input_shape)}): choose a model that reads text (e.g. model=bert)"
        )
    passed = {key: value for key, value in given.items() if key in taken}
    try:
        built = build(**passed, **settings(checked))
    except (TypeError, ValueError) as exc:  # what the signature's types could not tell
        raise ConfigError(
            f"model '{checked['name']}' refuses its settings {settings(checked)}: {exc}"
        ) from exc
    if not isinstance(built, nn.Module):
        raise ConfigError(f"{named} built a {type(built).__name__}: make it build a nn.Module")
    initialise(built, checked["init"])
    task = getattr(build, "task", None)
    if task in (None, LANGUAGE_MODEL):
        each_token = per_token or task == LANGUAGE_MODEL
        check_output(built, named, tuple(input_shape), num_outputs, vocab_size, each_token)
    return built


def check_output(
    model: "nn.Module",
    named: str,
    input_shape: tuple,
    num_outputs: int,
    vocab_size: int | None = None,
    per_token: bool = False,
) -> None:
    """One forward pass on two zero samples (token ids when `vocab_size` is given) gives
    one row of `num_outputs` per sample (per token of a text, when `per_token`, as a
    language model does): a model (dlpipe's or a user's) that does not fit the data is
    named here, in one line, rather than by a shape error deep in the first training step,
    an evaluation or a prediction. A model with another task of its own (its outputs are
    samples or inputs) is not checked."""
    import torch

    each = "token" if per_token else "sample"
    wanted = (2, input_shape[0], num_outputs) if per_token else (2, num_outputs)
    fix = f"make it return {num_outputs} numbers per {each}, or choose a model for this data"
    dtype = torch.long if vocab_size is not None else None  # None: the default float
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(torch.zeros(2, *input_shape, dtype=dtype))
    except DlpipeError:
        raise
    except Exception as exc:  # a user's forward may raise anything
        said = next(iter(str(exc).splitlines()), "")
        raise ConfigError(
            f"{named} fails on 2 samples shaped {input_shape} ({type(exc).__name__}: {said}): {fix}"
        ) from exc
    finally:
        model.train(was_training)
    got = tuple(out.shape) if isinstance(out, torch.Tensor) else f"a {type(out).__name__}"
    if got != wanted:
        raise ConfigError(
            f"{named} gives outputs shaped {got} for 2 samples shaped {input_shape}, "
            f"the data needs {wanted}: {fix}"
        )


def recorded(model: Mapping) -> dict:
    """A model config read back from a run record (models/run.json, a registered model).

    Runs recorded before models were named by `_target_` hold only the family's `name`:
    its `_target_` is taken from the project's conf/model/<name>.yaml, so those runs still
    evaluate, predict and serve without training again."""
    if model.get("_target_"):
        return dict(model)
    import yaml

    path = Path("conf") / "model" / f"{model.get('name')}.yaml"
    target = (yaml.safe_load(path.read_text()) or {}).get("_target_") if path.is_file() else None
    if not target:
        raise ConfigError(
            f"the recorded model '{model.get('name')}' names no _target_ and {path} gives "
            "none: run dlpipe from the project the model was trained in, or train it again"
        )
    return {"_target_": target, **model}
