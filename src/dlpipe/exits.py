"""How dlpipe stops on a user's mistake: one `error:` line on stderr, exit code 2.

Stages, Hydra callbacks and the `dlpipe` command all end this way, so that a script
calling any of them tells a mistake (2) from a failed check (1) by the exit code alone.
"""

import gc
import sys
from collections.abc import Iterator
from contextlib import contextmanager

EXIT_USAGE = 2


def fail(message: str) -> None:
    """Print `error: <message>`, secrets masked, on stderr and exit with code 2."""
    from dlpipe.config.secrets import mask_text  # on the way out only: it loads Hydra

    print(f"error: {mask_text(message)}", file=sys.stderr)
    raise SystemExit(EXIT_USAGE)


@contextmanager
def quick_exit() -> Iterator[None]:
    """Around a process's whole work: however it ends, the objects it made are frozen out
    of the garbage collector, whose passes over torch's, Lightning's and MLflow's modules
    at interpreter shutdown take 1.5-2 s of a stage's time and free nothing a process
    about to end needs freed. Exit handlers (atexit) and buffered output are unaffected."""
    try:
        yield
    finally:
        gc.freeze()
