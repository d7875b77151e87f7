"""Pipeline stages are Hydra apps; a user's mistake ends one with one line and exit code 2.

Hydra's own message for an unknown group option spans a dozen lines (search path and all),
so those are checked before Hydra starts, with the valid options listed.
"""

import argparse
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from dlpipe.errors import DlpipeError
from dlpipe.paths import PROJECT, Outputs

if TYPE_CHECKING:
    from dlpipe.sweep import SweepJob

EXIT_USAGE = 2
# What config `_target_`s may instantiate (dlpipe's Hydra callbacks); Hydra warns otherwise.
TRUSTED = ("dlpipe.*",)
_GROUP_CHOICE = re.compile(r"^\+{0,2}(?P<group>[A-Za-z_][\w/]*)=(?P<choices>[^=]+)$")


def fail(message: str) -> None:
    """Print `error: <message>`, secrets masked, on stderr and exit with code 2."""
    from dlpipe.secrets import mask_text  # on the way out only: it loads Hydra

    print(f"error: {mask_text(message)}", file=sys.stderr)
    raise SystemExit(EXIT_USAGE)


def whole_number(low: int, high: int) -> Callable[[str], int]:
    """An argparse type: a whole number from `low` to `high`, else argparse's error (exit
    code 2). The bounds are those of where the number goes: a larger one would stop the
    command later, with a traceback from sqlite, a socket or torch."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or not low <= value <= high:
            raise argparse.ArgumentTypeError(f"a whole number from {low} to {high}, got {text}")
        return value

    return parse


def check_group_choices(argv: list[str], conf_dir: Path) -> None:
    """`model=foo` where conf/model/foo.yaml does not exist -> one line listing the options."""
    for arg in argv:
        match = _GROUP_CHOICE.match(arg)
        if not match or not (conf_dir / match["group"]).is_dir():
            continue
        options = sorted(p.stem for p in (conf_dir / match["group"]).glob("*.yaml"))
        for choice in match["choices"].split(","):  # a multirun sweep lists several
            if choice not in options:
                fail(
                    f"unknown {match['group']} '{choice}': choose one of {', '.join(options)} "
                    f"(conf/{match['group']}/*.yaml)"
                )


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

    from dlpipe.sweep import SweepJob

    if not in_sweep():
        return PROJECT, None
    hydra = HydraConfig.get()
    job = SweepJob(sweep_dir=hydra.sweep.dir, overrides=list(hydra.overrides.task))
    return Outputs(Path(hydra.runtime.output_dir)), job


def compose_checked(conf_dir: Path, overrides: list[str]):
    """`conf_dir`'s config composed with `overrides` and checked against its schema, or
    one line saying what is wrong: an unknown group option, a key the config does not
    have, a value the schema refuses."""
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from dlpipe.schema import validate

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
    main()
