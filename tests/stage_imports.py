"""The dlpipe modules a pipeline stage imports, read from its import statements."""

import ast
import importlib.util
from collections.abc import Iterator
from pathlib import Path

from tests.conftest import ROOT

SRC = ROOT / "src"


def module_file(name: str, src: Path = SRC) -> Path | None:
    """The file of module `name` under `src`; None when `name` is no module there (a class
    or function imported from one, or another package)."""
    base = src.joinpath(*name.split("."))
    return next(
        (path for path in (base.with_suffix(".py"), base / "__init__.py") if path.is_file()),
        None,
    )


def named_modules(path: Path, package: str) -> Iterator[str]:
    """What each import statement of `path` names (a module, or a name in one), wherever
    the statement stands: one inside a function imports only when it is called."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = importlib.util.resolve_name("." * node.level + (node.module or ""), package)
            yield base
            yield from (f"{base}.{alias.name}" for alias in node.names)


def stage_imports(script: Path, src: Path = SRC) -> set[Path]:
    """Every file under `src` that running `script` may import: its imports, theirs, and so
    on, with the packages holding each (their __init__.py runs first)."""
    found: set[Path] = set()
    todo = [(script, "")]
    while todo:
        path, package = todo.pop()
        for name in named_modules(path, package):
            parts = name.split(".")
            for end in range(1, len(parts) + 1):
                module = ".".join(parts[:end])
                file = module_file(module, src)
                if file and file not in found:
                    found.add(file)
                    package = module if file.name == "__init__.py" else module.rpartition(".")[0]
                    todo.append((file, package))
    return found
