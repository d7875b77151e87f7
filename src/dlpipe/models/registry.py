"""A small strict registry of model builders: `@register("cnn")`, `list_models()`, `build_model()`.

A builder takes the input shape (without the batch axis), the number of outputs and the
model's own flat arguments, and returns a plain `nn.Module`. Every model also takes
`init`, the weight initialisation scheme, applied after it is built.
"""

import inspect
from collections.abc import Callable, Sequence

from torch import nn

from dlpipe.errors import ConfigError

Builder = Callable[..., nn.Module]
_BUILDERS: dict[str, Builder] = {}
# Models that define their own task whatever the data's (an autoencoder reconstructs).
_TASKS: dict[str, str] = {}


def register(name: str, task: str | None = None) -> Callable[[Builder], Builder]:
    """Register a builder under `name`; `task` when the model sets its own task."""

    def add(builder: Builder) -> Builder:
        if name in _BUILDERS:
            raise ValueError(f"model '{name}' is registered twice")
        _BUILDERS[name] = builder
        if task:
            _TASKS[name] = task
        return builder

    return add


def model_task(name: str, data_task: str) -> str:
    """The task a model trains for on data of `data_task`: its own, or the data's."""
    return _TASKS.get(name, data_task)


def list_models() -> list[str]:
    return sorted(_BUILDERS)


def check_model_name(name: str) -> None:
    if name not in _BUILDERS:
        raise ConfigError(f"unknown model '{name}': choose one of {', '.join(list_models())}")


def model_settings(name: str) -> set[str]:
    """The settings model `name` takes (conf/model/<name>.yaml): its builder's own and init."""
    check_model_name(name)
    own = set(inspect.signature(_BUILDERS[name]).parameters) - {"input_shape", "num_outputs"}
    return own | {"init"}


def build_model(
    name: str, input_shape: Sequence[int], num_outputs: int, init: str = "default", **params
) -> nn.Module:
    """Build a registered model, its weights set by the `init` scheme (see models.init).

    Unknown or missing arguments are named as config errors.
    """
    from dlpipe.models.init import check_init_name, initialise

    accepted = model_settings(name)
    check_init_name(init)
    unknown = sorted(set(params) - accepted)
    if unknown:
        raise ConfigError(
            f"model.{unknown[0]} is not a setting of model '{name}': "
            f"use one of {', '.join(sorted(accepted))}"
        )
    try:
        model = _BUILDERS[name](input_shape=tuple(input_shape), num_outputs=num_outputs, **params)
    except (TypeError, ValueError) as exc:  # e.g. model.hidden=abc
        raise ConfigError(f"model '{name}' refuses its settings {params}: {exc}") from exc
    return initialise(model, init)
