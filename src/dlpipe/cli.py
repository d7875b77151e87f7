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
    """The project's config (conf/ under the working directory) with `overrides`."""
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from dlpipe.app import check_group_choices

    conf_dir = Path.cwd() / "conf"
    if not (conf_dir / "config.yaml").is_file():
        fail(f"no conf/config.yaml in {Path.cwd()}: run dlpipe from the project's folder")
    check_group_choices(overrides, conf_dir)
    try:
        with initialize_config_dir(str(conf_dir)):
            return compose("config", overrides=overrides)
    except (HydraException, OmegaConfBaseException) as exc:
        fail(f"cannot compose the config with {' '.join(overrides)}: {str(exc).splitlines()[0]}")


def gradcheck(args: argparse.Namespace) -> int:
    """Check the configured model's gradients against finite differences, group by group."""
    from dlpipe import config
    from dlpipe.data.sources import load_source
    from dlpipe.errors import DlpipeError
    from dlpipe.models import build_model

    cfg = _compose(args.overrides)
    try:
        config.validate_training(cfg)
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
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
