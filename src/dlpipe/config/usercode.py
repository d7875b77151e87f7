"""The code of a user's own parts, found from the `_target_`s of a config.

A model (task, data source) named by `_target_: mypkg.nets.MyNet` runs where the project
folder is not on the path: in the environment that loads its logged MLflow model, on the
hosts of a Ray cluster. Its package travels with it there: MLflow's `code_paths`, Ray's
`py_modules`. dlpipe's own parts and installed packages (they are requirements, not
code to copy) stay behind. Nothing here imports the user's code or torch.
"""

import sysconfig
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from dlpipe.config.schema import targets
from dlpipe.errors import ConfigError

# Where installed packages live: a `_target_` found there is a requirement, not code.
_INSTALLED = {
    Path(sysconfig.get_paths()[key]).resolve() for key in ("purelib", "platlib", "stdlib")
}


def code_folders(config: Any) -> list[Path]:
    """The top-level package folder (or module file) of each user's `_target_` in `config`
    (a mapping, nested at any depth), each once, in the order found."""
    found: dict[Path, None] = {}
    for target in _targets(config):
        folder = _top_level(target)
        if folder is not None:
            found[folder] = None
    return list(found)


def _targets(config: Any) -> Iterator[str]:
    if isinstance(config, Mapping):
        for key, value in config.items():
            if key == "_target_" and isinstance(value, str):
                yield value
            else:
                yield from _targets(value)
    elif isinstance(config, Sequence) and not isinstance(config, str):
        for item in config:
            yield from _targets(item)


def _top_level(target: str) -> Path | None:
    """The folder of the package `target` is in (the file, for a top-level module); None
    for dlpipe's own, an installed package's, or one not found."""
    module = target.rpartition(".")[0]
    top = module.split(".")[0]
    if not module or top == "dlpipe":
        return None
    try:
        path = targets.module_file(module)
    except ConfigError:  # a target not found: the config check reports it
        return None
    if path is None:
        return None
    path = path.resolve()
    if path.name == "__init__.py":
        path = path.parent
    depth = module.count(".")
    path = path.parents[depth - 1] if depth else path
    if any(path.is_relative_to(folder) for folder in _INSTALLED):
        return None
    return path
