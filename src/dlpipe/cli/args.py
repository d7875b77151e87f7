"""The command line's pieces that every `dlpipe` subcommand shares."""

import argparse
from collections.abc import Callable

from dlpipe.exits import EXIT_USAGE


class Parser(argparse.ArgumentParser):
    """argparse, with a mistake on the command line said in one `error:` line: its usage
    block, printed first, would bury it."""

    def error(self, message: str) -> None:
        self.exit(EXIT_USAGE, f"error: {self.prog}: {message} (see {self.prog} --help)\n")


def add_command(commands, name: str, run: Callable, summary: str) -> argparse.ArgumentParser:
    """A subcommand `name` that calls `run(args)`, described by `run`'s docstring."""
    command = commands.add_parser(name, help=summary, description=run.__doc__)
    command.set_defaults(run=run)
    return command


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
