"""The `dlpipe gradcheck` and `dlpipe reproduce` commands: checks that exit 1 when they
find a fault, as a test does, and 2 on a mistake in how they were called.

torch and Lightning are imported once the config holds, never when `dlpipe` starts.
"""

import argparse

from dlpipe.cli.args import add_command, whole_number
from dlpipe.cli.project import client_and_config, compose

EXIT_FAILED_CHECK = 1


def add_commands(commands: argparse._SubParsersAction) -> None:
    """Add gradcheck and reproduce to the `dlpipe` command's subcommands."""
    check = add_command(
        commands, "gradcheck", gradcheck, "check a model's gradients against finite differences"
    )
    check.add_argument("overrides", nargs="*", help="config overrides, e.g. model=resnet")
    check.add_argument(
        "--batch", type=whole_number(1, 1024), default=4, help="inputs in the batch (default 4)"
    )
    again = add_command(
        commands,
        "reproduce",
        reproduce,
        "train a run again from its record; exit 1 if its metrics differ",
    )
    again.add_argument("run_id", metavar="RUN", help="the MLflow run id of a training")
    again.add_argument("overrides", nargs="*", help="config overrides, e.g. tracking.uri=...")
    again.add_argument(
        "--force", action="store_true", help="train even if the code or data differ from the record"
    )


def gradcheck(args: argparse.Namespace) -> int:
    """Check the configured model's gradients against finite differences, group by group."""
    cfg = compose(args.overrides)
    # Imported once the config holds: torch takes longer to load than the check.
    from dlpipe.config import checks as config
    from dlpipe.models import registry
    from dlpipe.training.gradcheck import check_model_gradients

    input_shape, num_outputs, vocab_size, per_token = _data_shape(config.to_dict(cfg.data))
    settings = config.to_dict(cfg.model)
    # Weights drawn from the config's seed: the same verdict on every run. Unseeded, one
    # run in many would draw a ReLU input within the finite difference's step of its
    # kink, and fail a correct gradient.
    import torch

    torch.manual_seed(cfg.seed)
    model = registry.build_model(settings, input_shape, num_outputs, vocab_size, per_token)
    print(
        f"gradcheck of model '{registry.label(settings)}' in float64 on {args.batch} "
        f"{cfg.data.name} inputs shaped {tuple(input_shape)}:"
    )
    results = check_model_gradients(model, input_shape, args.batch, vocab_size)
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


def reproduce(args: argparse.Namespace) -> int:
    """Train a run again from its MLflow record and check that its metrics come out the
    same. It checks out nothing: the working tree must be the run's commit, clean, with
    its prepared data (data/prepared), or --force."""
    client, _ = client_and_config(args.overrides)
    # Imported once the config holds: the training loads torch and Lightning.
    from dlpipe.tracking.reproduce import reproduce as train_again

    matched = train_again(client, args.run_id, args.force)
    return 0 if matched else EXIT_FAILED_CHECK


def _data_shape(data: dict) -> tuple[tuple[int, ...], int, int | None, bool]:
    """A sample's shape, the outputs a model gives per sample (per token, the last: True),
    and, for text, the size of the vocabulary (data.text.vocab_size, the most the
    tokeniser may learn)."""
    from dlpipe.data.raw import class_outputs
    from dlpipe.data.sources import call_source, load_source
    from dlpipe.data.tagged import Tagged

    if data.get("text") is None:
        raw = load_source(data)
        return raw.x.shape[1:], raw.num_outputs, None, False
    texts, text = call_source(data), data["text"]
    vocab, shape = text["vocab_size"], (text["context"],)
    if isinstance(texts, Tagged):
        return shape, len({tag for tags in texts.tags for tag in tags}), vocab, True
    labels = texts.label_columns.values()
    outputs = sum(class_outputs(sorted(set(each))) for each in labels) if labels else vocab
    return shape, outputs, vocab, False
