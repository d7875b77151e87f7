"""The dlpipe command: utility commands around the pipelines.

One entry (`main`), one way to end on a user's mistake: a DlpipeError raised by any
command becomes one `error:` line and exit code 2. Start-up stays fast: torch, Lightning
and MLflow are imported only inside the commands that need them.
"""

import argparse
import os
import signal
import sys

from dlpipe import __version__
from dlpipe.cli import check, models, runs, writing
from dlpipe.cli.args import Parser
from dlpipe.errors import DlpipeError
from dlpipe.exits import fail, quick_exit

# As a shell reports a command ended by that signal.
EXIT_PIPE_CLOSED, EXIT_INTERRUPTED = 128 + signal.SIGPIPE, 128 + signal.SIGINT


def parser() -> argparse.ArgumentParser:
    top = Parser(prog="dlpipe", description=__doc__.splitlines()[0])
    top.add_argument("--version", action="version", version=f"dlpipe {__version__}")
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in (check, runs, models, writing):
        group.add_commands(commands)
    return top


def command() -> None:
    """The `dlpipe` executable."""
    with quick_exit():
        code = main()
    sys.exit(code)


def main(argv: list[str] | None = None) -> int:
    """Run the command; a DlpipeError ends it with one `error:` line and exit code 2, a
    reader of its output that went away (`dlpipe runs | head`) or Ctrl-C quietly."""
    args = parser().parse_args(argv)
    try:
        code = args.run(args)
        sys.stdout.flush()  # a closed pipe shows here, not in Python's own flush at exit
    except DlpipeError as exc:
        fail(str(exc))
    except BrokenPipeError:
        # Python's docs, "Note on SIGPIPE": nothing more can reach the reader, and the
        # flush at exit must not fail again on the same pipe.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_PIPE_CLOSED
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    return code
