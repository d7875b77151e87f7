"""The house's rules on imports, checked over the source of every module of src/dlpipe.

Who may import whom, between dlpipe's own modules (a name stands for that module and the
modules under it):

| importer       | rule                                               | why                        |
|----------------|----------------------------------------------------|----------------------------|
| dlpipe.models  | imports only dlpipe.models, dlpipe.errors and      | a model knows no data, run |
|                | dlpipe.config.schema.targets (settings read from   | or training                |
|                | source)                                            |                            |
| dlpipe.data    | never imports dlpipe.models, tasks, training,      | data knows no model, run   |
|                | evaluation, tracking, cluster, serving             | or training                |
| dlpipe.tasks   | never imports evaluation, tracking, cluster,       | a task is what a training  |
|                | serving                                            | optimises, not where       |
| dlpipe.training| never imports evaluation, serving                  | training knows no scoring  |
| dlpipe.serving | never imports evaluation, cluster, search          | serving needs the network  |
| every module   | never imports dlpipe.cli (but the CLI itself) nor  | the CLI is the top; stages |
|                | pipelines/                                         | call the library           |
| every module   | is in no import cycle                              | a cycle breaks by import   |
|                |                                                    | order, at run time         |
| mlflow         | is imported only by MLFLOW_IMPORTERS               | one seam for the store     |
| `dlpipe` start | imports none of HEAVY (torch, Lightning, MLflow,   | it answers in a fraction   |
|                | Hydra, Ray, Optuna)                                | of a second                |

Every import statement counts, wherever it stands: one inside a function runs when the
function is called, so a cycle through it breaks at run time all the same. Only those
under `if TYPE_CHECKING:` never run and are left out.
"""

import ast
import importlib.util
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import ROOT

SRC = ROOT / "src"

# (importer, "only" or "never", modules, why): the table above, as the tests read it.
RULES = [
    (
        "dlpipe.models",
        "only",
        ("dlpipe.models", "dlpipe.errors", "dlpipe.config.schema.targets"),
        "a model knows no data, run or training",
    ),
    (
        "dlpipe.data",
        "never",
        (
            "dlpipe.models",
            "dlpipe.tasks",
            "dlpipe.training",
            "dlpipe.evaluation",
            "dlpipe.tracking",
            "dlpipe.cluster",
            "dlpipe.serving",
        ),
        "data knows no model, run or training",
    ),
    (
        "dlpipe.tasks",
        "never",
        ("dlpipe.evaluation", "dlpipe.tracking", "dlpipe.cluster", "dlpipe.serving"),
        "a task says what a training optimises, not where it runs or is recorded",
    ),
    (
        "dlpipe.training",
        "never",
        ("dlpipe.evaluation", "dlpipe.serving"),
        "a training knows nothing of how its model is scored or served",
    ),
    (
        "dlpipe.serving",
        "never",
        ("dlpipe.evaluation", "dlpipe.cluster", "dlpipe.search"),
        "a served model needs its network and preprocessing only",
    ),
    ("dlpipe", "never", ("dlpipe.cli", "pipelines"), "nothing imports the CLI or a stage"),
]

# The modules that import MLflow, each with why it must. This list must only shrink: any
# other module goes through dlpipe.tracking.client (its Client, TrackingStoreError and small
# functions), the one seam for another tracking store.
MLFLOW_IMPORTERS = {
    "dlpipe.tracking.client": "it is the seam: the store's client, its errors, retries and records",
    "dlpipe.tracking.registry": "it logs a run's model in MLflow's pyfunc format and registers "
    "versions of it in MLflow's model registry",
    "dlpipe.serving.pyfunc_model": "MLflow loads a logged model by running it: its model "
    "must subclass MLflow's PythonModel",
}

# What the `dlpipe` command must start without: each takes longer to import than a
# command that reads runs may take in all.
HEAVY = ("torch", "lightning", "mlflow", "hydra", "ray", "optuna")


@dataclass(frozen=True)
class Import:
    """One module's import of another: `named` when its statement names the module
    itself, not when the module only runs as the package of a module named."""

    importer: str
    module: str
    line: int
    named: bool = True


def modules(src: Path = SRC) -> dict[str, Path]:
    """Every module under src/dlpipe by its dotted name (a package by its __init__.py)."""
    found = {}
    for path in sorted((src / "dlpipe").rglob("*.py")):
        parts = path.relative_to(src).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imports(name: str, path: Path, known: set[str]) -> list[Import]:
    """The imports of module `name` (at `path`): modules of `known`, and other packages by
    their top name (`mlflow`, `torch`)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in _run_time(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                found += _chain(name, alias.name, node.lineno, known, named=True)
        elif isinstance(node, ast.ImportFrom):
            base = importlib.util.resolve_name("." * node.level + (node.module or ""), package)
            submodules = [f"{base}.{alias.name}" for alias in node.names]
            # `from pkg import name` reads pkg's own namespace unless name is a module.
            takes_names = any(sub not in known for sub in submodules)
            found += _chain(name, base, node.lineno, known, named=takes_names)
            for sub in submodules:
                if sub in known:
                    found += _chain(name, sub, node.lineno, known, named=True)
    return found


def _run_time(tree: ast.Module):
    """The nodes of `tree`, without the bodies of `if TYPE_CHECKING:` blocks."""
    todo = [tree]
    while todo:
        node = todo.pop()
        yield node
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and ast.unparse(child.test).endswith("TYPE_CHECKING"):
                todo.extend(child.orelse)
            else:
                todo.append(child)


def _chain(importer: str, module: str, line: int, known: set[str], named: bool) -> list[Import]:
    """Importing `module` runs it and each package above it first; those above the
    importer are running already, so they add nothing."""
    if not module.startswith("dlpipe.") and module != "dlpipe":
        return [Import(importer, module.split(".")[0], line)]
    parts = module.split(".")
    found = []
    for end in range(1, len(parts) + 1):
        prefix = ".".join(parts[:end])
        last = end == len(parts)
        above_importer = importer.startswith(f"{prefix}.")
        if prefix in known and prefix != importer and (not above_importer or (last and named)):
            found.append(Import(importer, prefix, line, named=last and named))
    return found


@pytest.fixture(scope="module")
def graph() -> dict[str, list[Import]]:
    found = modules()
    return {name: imports(name, path, set(found)) for name, path in found.items()}


def under(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(f"{prefix}.")


def cycle(graph: dict[str, list[Import]]) -> list[str] | None:
    """One import cycle of dlpipe's modules, as the path around it; None when there is none."""
    state: dict[str, str] = {}
    path: list[str] = []

    def visit(module: str) -> list[str] | None:
        state[module] = "open"
        path.append(module)
        for edge in graph.get(module, ()):
            if edge.module not in graph:
                continue
            if state.get(edge.module) == "open":
                return [*path[path.index(edge.module) :], edge.module]
            if edge.module not in state:
                found = visit(edge.module)
                if found:
                    return found
        state[module] = "done"
        path.pop()
        return None

    for module in graph:
        if module not in state:
            found = visit(module)
            if found:
                return found
    return None


def test_no_import_cycles(graph):
    found = cycle(graph)
    assert found is None, f"import cycle: {' -> '.join(found)}"


def test_a_cycle_is_found_and_shown_as_its_path(tmp_path):
    """The check itself: a cycle through a function-level import and a package's
    __init__ is found, and reported as the path around it."""
    package = tmp_path / "dlpipe"
    (package / "wing").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "wing" / "__init__.py").write_text("from dlpipe.wing.inner import thing\n")
    (package / "wing" / "inner.py").write_text("def thing():\n    from dlpipe import user\n")
    (package / "user.py").write_text("from dlpipe.wing import thing\n")
    (package / "alone.py").write_text("from dlpipe.wing import inner\n")
    found = modules(tmp_path)
    assert cycle({name: imports(name, path, set(found)) for name, path in found.items()}) in (
        ["dlpipe.wing", "dlpipe.wing.inner", "dlpipe.user", "dlpipe.wing"],
        ["dlpipe.wing.inner", "dlpipe.user", "dlpipe.wing", "dlpipe.wing.inner"],
        ["dlpipe.user", "dlpipe.wing", "dlpipe.wing.inner", "dlpipe.user"],
    )


@pytest.mark.parametrize("importer,rule,listed,why", RULES, ids=[rule[0] for rule in RULES])
def test_allowed_directions(graph, importer, rule, listed, why):
    broken = []
    for name, edges in graph.items():
        if not under(name, importer):
            continue
        for edge in edges:
            if not edge.named or not edge.module.startswith(("dlpipe", "pipelines")):
                continue
            hits = any(under(edge.module, allowed) for allowed in listed)
            own = any(under(name, allowed) for allowed in listed)  # the CLI imports itself
            if (rule == "only" and not hits) or (rule == "never" and hits and not own):
                broken.append(f"{name} imports {edge.module} (line {edge.line})")
    assert not broken, f"{importer} {rule} {', '.join(listed)} ({why}): " + "; ".join(broken)


def test_mlflow_is_imported_only_where_listed(graph):
    importers = {name for name, edges in graph.items() if any(e.module == "mlflow" for e in edges)}
    listed = set(MLFLOW_IMPORTERS)
    assert not importers - listed, (
        f"{', '.join(sorted(importers - listed))} import mlflow: "
        "go through dlpipe.tracking.client instead"
    )
    assert not listed - importers, (
        f"{', '.join(sorted(listed - importers))} no longer import mlflow: "
        "take them off MLFLOW_IMPORTERS"
    )


def test_the_command_starts_without_heavy_packages():
    """The `dlpipe` command's modules and its parser load none of HEAVY (each command
    imports what it needs once it runs)."""
    script = (
        "import sys\n"
        "from dlpipe.cli import parser\n"
        "parser()\n"
        f"print(' '.join(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r}))))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == ""
