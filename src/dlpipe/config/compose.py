"""Pipeline stages are Hydra apps; a user's mistake ends one with one line and exit code 2.

Hydra's own message for an unknown group option spans a dozen lines (search path and all),
so those are checked before Hydra starts, with the valid options listed.
"""

import os
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from dlpipe.errors import ConfigError, DlpipeError
from dlpipe.exits import fail, quick_exit
from dlpipe.paths import PROJECT, Outputs

if TYPE_CHECKING:
    from dlpipe.tracking.sweep import SweepJob

# What config `_target_`s may instantiate (dlpipe's Hydra callbacks); Hydra warns otherwise.
TRUSTED = ("dlpipe.*",)
_GROUP_CHOICE = re.compile(r"^\+{0,2}(?P<group>[A-Za-z_][\w/]*)=(?P<choices>[^=]+)$")


def check_group_choices(argv: list[str], conf_dir: Path) -> None:
    """`model=foo` where no folder of the search path has model/foo.yaml -> one line
    listing the options of every folder."""
    folders = search_folders(argv, conf_dir)
    for arg in argv:
        match = _GROUP_CHOICE.match(arg)
        if not match:
            continue
        group = match["group"]
        places = [folder / group for folder in folders if (folder / group).is_dir()]
        if not places:
            continue
        options = sorted({path.stem for place in places for path in place.glob("*.yaml")})
        for choice in match["choices"].split(","):  # a multirun sweep lists several
            if choice not in options:
                where = ", ".join(f"{_shown(place)}/*.yaml" for place in places)
                fail(f"unknown {group} '{choice}': choose one of {', '.join(options)} ({where})")


def search_folders(argv: list[str], conf_dir: Path) -> list[Path]:
    """`conf_dir` and the folders Hydra also looks in for a group's options: those of
    `hydra.searchpath` in conf/config.yaml, or on the command line, which replaces it."""
    entries = None
    for arg in argv:
        if arg.startswith("hydra.searchpath="):
            from hydra.core.override_parser.overrides_parser import OverridesParser
            from hydra.errors import HydraException

            try:
                entries = OverridesParser.create().parse_override(arg).value()
            except HydraException as exc:
                fail(f"cannot read {arg}: {str(exc).splitlines()[0]}")
    if entries is None:
        primary = conf_dir / "config.yaml"
        if primary.is_file():
            from omegaconf import OmegaConf

            entries = OmegaConf.select(OmegaConf.load(primary), "hydra.searchpath")
    if entries is None:
        return [conf_dir]
    if isinstance(entries, str) or not isinstance(entries, Sequence):
        fail(f"hydra.searchpath must be a list of folders, e.g. [file://myconf], got {entries!r}")
    folders = (_search_folder(str(entry)) for entry in entries)
    return [conf_dir, *(folder for folder in folders if folder is not None)]


def _search_folder(entry: str) -> Path | None:
    """The folder of one search-path entry as Hydra reads it: `file://path` (or a bare
    path), relative to the working directory; `pkg://package.module`, that module's."""
    scheme, _, place = entry.rpartition("://")
    if scheme in ("", "file"):
        return Path(place)
    if scheme == "pkg":
        import importlib.util

        top, *rest = place.split(".")
        try:
            spec = importlib.util.find_spec(top)
        except (ImportError, ValueError):
            return None
        locations = (spec.submodule_search_locations or []) if spec else []
        return Path(locations[0], *rest) if locations else None
    return None


def _shown(folder: Path) -> str:
    """`folder` as a user types it: relative to the working directory when inside it."""
    try:
        return str(folder.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(folder)


def in_sweep() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn a DlpipeError into `error: <message>` on stderr and exit code 2 (no traceback).

    In a sweep the error stays an exception: Hydra records that job as failed and the
    sweeper decides whether the sweep goes on.
    """
    try:
        yield
    except DlpipeError as exc:
        if in_sweep():
            raise
        fail(str(exc))


def job_outputs() -> tuple[Outputs, "SweepJob | None"]:
    """Where this job writes, and its sweep: the job's own folder in a sweep, else the root."""
    from hydra.core.hydra_config import HydraConfig

    from dlpipe.tracking.sweep import SweepJob

    if not in_sweep():
        return PROJECT, None
    hydra = HydraConfig.get()
    enter_sweep_folder(Path(hydra.runtime.cwd))
    job = SweepJob(sweep_dir=hydra.sweep.dir, overrides=list(hydra.overrides.task))
    return Outputs(Path(hydra.runtime.output_dir)), job


def enter_sweep_folder(project: Path) -> None:
    """Work in the folder the sweep started from, as a job run in-process does: a job that
    a Ray launcher (or Ray Tune) sends to a node starts in a folder of that node's own."""
    if Path.cwd() == project:
        return
    if not project.is_dir():
        raise ConfigError(
            f"this sweep job runs on a host without the project folder {project}: put the "
            "project on a file system every host mounts at the same path, or run the sweep's "
            "jobs where the project is (hydra/launcher=basic)"
        )
    os.chdir(project)


def compose_checked(conf_dir: Path, overrides: list[str]):
    """`conf_dir`'s config composed with `overrides` and checked against its schema, or
    one line saying what is wrong: an unknown group option, a key the config does not
    have, a value the schema refuses."""
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from dlpipe.config.schema.validate import validate

    check_group_choices(overrides, conf_dir)
    try:
        with initialize_config_dir(str(conf_dir)):
            cfg = compose("config", overrides=overrides)
    except (HydraException, OmegaConfBaseException) as exc:
        fail(_composition_error(exc, conf_dir, overrides))
    with user_errors():
        validate(cfg)
    return cfg


_NOT_IN_CONFIG = re.compile(r"Could not override '(?P<key>[^']+)'")


def _composition_error(exc: Exception, conf_dir: Path, overrides: list[str]) -> str:
    """Hydra's several lines as one; for a key the config lacks, the keys it has there."""
    found = _NOT_IN_CONFIG.search(str(exc))
    if not found:
        return f"cannot compose the config with {' '.join(overrides)}: {str(exc).splitlines()[0]}"
    key = found["key"]
    parent, _, _ = key.rpartition(".")
    rest = [arg for arg in overrides if not arg.startswith(f"{key}=")]
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    with initialize_config_dir(str(conf_dir)):
        cfg = compose("config", overrides=rest)
    node = OmegaConf.select(cfg, parent) if parent else cfg
    where = parent or "the config"
    return f"{key} is not a setting of {where}: it takes {', '.join(sorted(node))}"


def launch(main: Callable[[], None], conf_dir: Path) -> None:
    """Start a Hydra app after checking its command line against `conf_dir`.

    Hydra's own messages span several lines; a plain run (no Hydra flags such as `-m` or
    `--config-dir`) is composed here first, so that a mistake in it is one line.
    """
    argv = sys.argv[1:]
    check_group_choices(argv, conf_dir)
    if not any(arg.startswith("-") for arg in argv):
        compose_checked(conf_dir, argv)
    with quick_exit():
        main()
