"""Pipeline stages are Hydra apps; a user's mistake ends one with one line and exit code 2.

Hydra's own message for an unknown group option spans a dozen lines (search path and all),
so those are checked before Hydra starts, with the valid options listed.
"""

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
    """Print `error: <message>` on stderr and exit with code 2."""
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(EXIT_USAGE)


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


def launch(main: Callable[[], None], conf_dir: Path) -> None:
    """Start a Hydra app after checking its group choices against `conf_dir`."""
    check_group_choices(sys.argv[1:], conf_dir)
    main()
