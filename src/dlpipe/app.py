"""Pipeline stages are Hydra apps; a user's mistake ends one with one line and exit code 2.

Hydra's own message for an unknown group option spans a dozen lines (search path and all),
so those are checked before Hydra starts, with the valid options listed.
"""

import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from dlpipe.errors import DlpipeError

EXIT_USAGE = 2
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


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn a DlpipeError into `error: <message>` on stderr and exit code 2 (no traceback)."""
    try:
        yield
    except DlpipeError as exc:
        fail(str(exc))


def launch(main: Callable[[], None], conf_dir: Path) -> None:
    """Start a Hydra app after checking its group choices against `conf_dir`."""
    check_group_choices(sys.argv[1:], conf_dir)
    main()
