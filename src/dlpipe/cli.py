"""The dlpipe command: utility commands around the pipelines.

Start-up stays fast: torch and Lightning are imported only inside the subcommands that
need them, never at the top of this module.
"""

import argparse
import os
import signal
import sys
from dataclasses import replace
from pathlib import Path

from dlpipe import __version__, model_cli, runs_cli
from dlpipe.app import EXIT_USAGE, fail, whole_number
from dlpipe.errors import DlpipeError

EXIT_FAILED_CHECK = 1
# As a shell reports a command ended by that signal.
EXIT_PIPE_CLOSED, EXIT_INTERRUPTED = 128 + signal.SIGPIPE, 128 + signal.SIGINT


def _compose(overrides: list[str]):
    """The project's config (conf/ under the working directory) with `overrides`, checked
    against its schema."""
    from dlpipe.app import compose_checked

    conf_dir = Path.cwd() / "conf"
    if not (conf_dir / "config.yaml").is_file():
        fail(f"no conf/config.yaml in {Path.cwd()}: run dlpipe from the project's folder")
    return compose_checked(conf_dir, overrides)


def gradcheck(args: argparse.Namespace) -> int:
    """Check the configured model's gradients against finite differences, group by group."""
    cfg = _compose(args.overrides)
    # Imported once the config holds: torch takes longer to load than the check.
    from dlpipe import config
    from dlpipe.data.sources import load_source
    from dlpipe.models import build_model

    raw = load_source(config.to_dict(cfg.data))
    input_shape = raw.x.shape[1:]
    model = build_model(
        input_shape=input_shape, num_outputs=raw.num_outputs, **config.to_dict(cfg.model)
    )
    print(
        f"gradcheck of model '{cfg.model.name}' in float64 on {args.batch} "
        f"{cfg.data.name} inputs shaped {tuple(input_shape)}:"
    )
    results = _check(cfg.model.name, model, input_shape, args.batch)
    for result in results:
        verdict = "pass" if result.passed else "FAIL"
        line = f"  {verdict}  {result.group:<32} {result.parameters:>9,} weights  {result.detail}"
        print(line.rstrip())
    failed = [result.group for result in results if not result.passed]
    if failed:
        print(f"{len(failed)} of {len(results)} parameter groups FAIL: {', '.join(failed)}")
        return EXIT_FAILED_CHECK
    print(f"all {len(results)} parameter groups pass")
    return 0


def _check(name: str, model, input_shape, batch: int) -> list:
    """Gradcheck results per parameter group; a GAN's generator (fed noise) and
    discriminator (fed data) are checked each on its own input."""
    from dlpipe.gradcheck import check_gradients
    from dlpipe.models import model_task

    if model_task(name, "classification") != "generation":
        return check_gradients(model, input_shape, batch=batch)
    return [
        replace(result, group=f"{part}.{result.group}")
        for part, shape in (("generator", (model.latent,)), ("discriminator", input_shape))
        for result in check_gradients(getattr(model, part), shape, batch=batch)
    ]


def reproduce(args: argparse.Namespace) -> int:
    """Train a run again from its MLflow record and check that its metrics come out the
    same. It checks out nothing: the working tree must be the run's commit, clean, with
    its prepared data (data/prepared), or --force."""
    cfg = _compose(args.overrides)
    # Imported once the config holds: the training loads torch and Lightning.
    from dlpipe import tracking
    from dlpipe.reproduce import reproduce as train_again

    client = tracking.get_client(tracking.resolve_uri(cfg.tracking.uri))
    matched = train_again(client, args.run_id, args.force)
    return 0 if matched else EXIT_FAILED_CHECK


class _Parser(argparse.ArgumentParser):
    """argparse, with a mistake on the command line said in one `error:` line: its usage
    block, printed first, would bury it."""

    def error(self, message: str) -> None:
        self.exit(EXIT_USAGE, f"error: {self.prog}: {message} (see {self.prog} --help)\n")


def parser() -> argparse.ArgumentParser:
    top = _Parser(prog="dlpipe", description=__doc__.splitlines()[0])
    top.add_argument("--version", action="version", version=f"dlpipe {__version__}")
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    check = commands.add_parser(
        "gradcheck",
        help="check a model's gradients against finite differences",
        description=gradcheck.__doc__,
    )
    check.add_argument("overrides", nargs="*", help="config overrides, e.g. model=resnet")
    check.add_argument(
        "--batch", type=whole_number(1, 1024), default=4, help="inputs in the batch (default 4)"
    )
    check.set_defaults(run=gradcheck)
    again = commands.add_parser(
        "reproduce",
        help="train a run again from its record; exit 1 if its metrics differ",
        description=reproduce.__doc__,
    )
    again.add_argument("run_id", metavar="RUN", help="the MLflow run id of a training")
    again.add_argument("overrides", nargs="*", help="config overrides, e.g. tracking.uri=...")
    again.add_argument(
        "--force", action="store_true", help="train even if the code or data differ from the record"
    )
    again.set_defaults(run=reproduce)
    runs_cli.add_commands(commands)
    model_cli.add_commands(commands)
    return top


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


if __name__ == "__main__":
    sys.exit(main())
