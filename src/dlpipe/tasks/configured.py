"""The task a training runs: dlpipe's own for its model's or data's task, or a user's.

`task: null` (the default) trains the data's task, or the model's own (an autoencoder
reconstructs). `task: {_target_: mypkg.tasks.smoothed, smoothing: 0.1}` names a user's
function of its settings that returns a `TaskKind` (dlpipe.tasks.kinds), usually a
built-in one with its objective replaced. Its settings are read from its signature and
checked before torch loads; the function runs when the training is set up. Its `name`
stays the built-in task's: the run record, evaluation, the registry and serving read it.
"""

from typing import Any

from dlpipe.config.schema import targets
from dlpipe.errors import ConfigError
from dlpipe.tasks.kinds import BUILTIN, TaskKind, builtin


def check_task(values: Any, path: str = "task") -> dict | None:
    """A task config checked before torch loads: null, or a `_target_` with its settings
    known, of their types and in range."""
    if values is None:
        return None
    target = values.get("_target_") if isinstance(values, dict) else None
    if not isinstance(target, str) or not target:
        raise ConfigError(
            f"{path} must be null (the data's task) or name a function returning a "
            f"TaskKind, {path}._target_=package.module.function; got {values!r}"
        )
    settings = {key: value for key, value in values.items() if key != "_target_"}
    checked = targets.check_settings(settings, targets.signature(target), path, f"task {target}")
    return {"_target_": target, **checked}


def resolve(values: dict | None, task: str) -> TaskKind:
    """The descriptor of a training whose model trains for `task` (the data's, or the
    model's own), with the config's `task` (a user's) when it names one."""
    own = builtin(task)
    checked = check_task(values)
    if checked is None:
        return own
    target = checked.pop("_target_")
    made = targets.load(target)(**checked)
    if not isinstance(made, TaskKind):
        raise ConfigError(
            f"task {target} returned a {type(made).__name__}: make it return a "
            "dlpipe.tasks.kinds.TaskKind (e.g. replace(builtin('classification'), ...))"
        )
    if made.name not in BUILTIN:
        raise ConfigError(
            f"task {target} is named '{made.name}', none of dlpipe's tasks "
            f"({', '.join(BUILTIN)}): a task keeps the name of the one it is built on, here "
            f"the training's {own.name}: replace(builtin('{own.name}'), ...) without name="
        )
    if made.name != own.name:
        raise ConfigError(
            f"task {target} is a {made.name} task but this training is {own.name}: choose "
            f"data and a model for {made.name}, or build the task on builtin('{own.name}')"
        )
    return made
