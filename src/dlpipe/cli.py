"""The dlpipe command: utility commands around the pipelines.

Start-up stays fast: torch and Lightning are imported only inside the subcommands that
need them, never at the top of this module.
"""

import argparse
import sys
from dataclasses import replace
from pathlib import Path

from dlpipe import __version__
from dlpipe.app import fail

EXIT_FAILED_CHECK = 1


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
    from dlpipe.errors import DlpipeError
    from dlpipe.models import build_model

    try:
        raw = load_source(config.to_dict(cfg.data))
        input_shape = raw.x.shape[1:]
        model = build_model(
            input_shape=input_shape, num_outputs=raw.num_outputs, **config.to_dict(cfg.model)
        )
    except DlpipeError as exc:
        fail(str(exc))
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


def runs(args: argparse.Namespace) -> int:
    """List the experiment's recent runs; with --stale, first mark FAILED the runs left
    RUNNING by a process that died (a kill -9, a lost machine)."""
    from dlpipe import runs as listing
    from dlpipe import tracking
    from dlpipe.errors import TrackingError

    cfg = _compose(args.overrides)
    try:
        client = tracking.get_client(tracking.resolve_uri(cfg.tracking.uri))
    except TrackingError as exc:
        fail(str(exc))
    experiment = cfg.tracking.experiment
    if args.stale:
        failed = listing.fail_stale(client, experiment)
        print(f"{len(failed)} stale run(s) marked FAILED{': ' if failed else ''}{' '.join(failed)}")
    print(listing.table(listing.recent(client, experiment, args.limit)))
    return 0


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="dlpipe", description=__doc__.splitlines()[0])
    top.add_argument("--version", action="version", version=f"dlpipe {__version__}")
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    check = commands.add_parser(
        "gradcheck",
        help="check a model's gradients against finite differences",
        description=gradcheck.__doc__,
    )
    check.add_argument("overrides", nargs="*", help="config overrides, e.g. model=resnet")
    check.add_argument("--batch", type=int, default=4, help="inputs in the batch (default 4)")
    check.set_defaults(run=gradcheck)
    listed = commands.add_parser(
        "runs",
        help="list the experiment's runs; --stale fails dead RUNNING ones",
        description=runs.__doc__,
    )
    listed.add_argument("overrides", nargs="*", help="config overrides, e.g. tracking.uri=...")
    listed.add_argument(
        "--stale", action="store_true", help="mark FAILED the RUNNING runs whose process died"
    )
    listed.add_argument("--limit", type=int, default=20, help="runs to list (default 20)")
    listed.set_defaults(run=runs)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
