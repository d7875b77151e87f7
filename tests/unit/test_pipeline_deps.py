"""dvc.yaml's deps hold all the code each stage runs, so that a change to any module a stage
imports makes `dvc repro` run it again (tests/integration/test_pipeline.py sees `dvc status`
report it)."""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT
from tests.stage_imports import module_file, named_modules, stage_imports

STAGES = ("prepare", "train", "evaluate")
# Imports a stage's script as a module (its main does not run), then the library entries
# it names, and prints the file of every dlpipe module then loaded.
LOADED = """
import importlib, importlib.util, sys
spec = importlib.util.spec_from_file_location("stage", sys.argv[1])
spec.loader.exec_module(importlib.util.module_from_spec(spec))
for name in sys.argv[2:]:
    importlib.import_module(name)
for module in list(sys.modules.values()):
    if module.__name__.split(".")[0] == "dlpipe" and getattr(module, "__file__", None):
        print(module.__file__)
"""


def script(stage: str) -> Path:
    return ROOT / "pipelines" / f"{stage}.py"


@pytest.fixture(scope="module")
def loaded() -> dict[str, set[Path]]:
    """The dlpipe files each stage's script and library entries load, one fresh interpreter
    per stage, side by side."""
    processes = {}
    for stage in STAGES:
        entries = {name for name in named_modules(script(stage), "") if module_file(name)}
        processes[stage] = subprocess.Popen(
            [sys.executable, "-c", LOADED, str(script(stage)), *sorted(entries)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
    found = {}
    for stage, process in processes.items():
        out, _ = process.communicate(timeout=300)
        assert process.returncode == 0
        found[stage] = {Path(line).resolve() for line in out.splitlines()}
    return found


def deps(stage: str) -> list[Path]:
    pipeline = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    return [ROOT / dep for dep in pipeline["stages"][stage]["deps"]]


@pytest.mark.parametrize("stage", STAGES)
def test_each_stage_depends_on_every_module_it_imports(stage, loaded):
    imported = {script(stage), *stage_imports(script(stage)), *loaded[stage]}
    listed = deps(stage)
    missing = [
        str(path.relative_to(ROOT))
        for path in sorted(imported)
        if not any(path == dep or dep in path.parents for dep in listed)
    ]
    assert missing == [], f"dvc.yaml's {stage} stage does not depend on {missing}"


@pytest.mark.parametrize("stage", STAGES)
def test_import_statements_name_all_a_stage_loads(stage, loaded):
    # What the first test reads from import statements covers the modules that import
    # loads for real (none comes from a name built at run time).
    assert loaded[stage] <= stage_imports(script(stage))
