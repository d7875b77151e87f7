"""The `dlpipe generate` command: text from a trained language model.

The model is found as `dlpipe predict` finds it (a registered version, a run's logged
model, or a checkpoint with its run record); the tokeniser comes with it. MLflow and torch
are imported once the command runs.
"""

import argparse

from dlpipe.cli.args import add_command, whole_number
from dlpipe.cli.project import client_and_config
from dlpipe.errors import ConfigError

# The most tokens a call writes (dlpipe.serving.text.MOST_TOKENS, which imports torch).
MOST_TOKENS = 100_000


def add_commands(commands: argparse._SubParsersAction) -> None:
    """Add generate to the `dlpipe` command's subcommands."""
    written = add_command(commands, "generate", generate, "write text with a language model")
    written.add_argument(
        "model", metavar="MODEL", help="models:/NAME@ALIAS, models:/NAME/VERSION, RUN or FILE.ckpt"
    )
    written.add_argument("overrides", nargs="*", help="config overrides, e.g. tracking.uri=<uri>")
    written.add_argument("--prompt", required=True, help="the text the model continues")
    written.add_argument(
        "--tokens", type=whole_number(1, MOST_TOKENS), default=200, help="tokens to write"
    )
    written.add_argument(
        "--temperature",
        type=_temperature,
        default=1.0,
        help="below 1: likelier tokens; above: more varied; 0: the likeliest each time",
    )
    written.add_argument(
        "--top-k",
        type=whole_number(0, MOST_TOKENS),
        default=0,
        help="draw among the k likeliest (0: all)",
    )
    written.add_argument("--seed", type=whole_number(0, 2**63 - 1), default=0, help="random seed")
    written.add_argument(
        "--run-file", metavar="RUN.json", help="a checkpoint's run record (default: beside it)"
    )


def _temperature(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = None
    if value is None or not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"a number >= 0, got {text}")
    return value


def generate(args: argparse.Namespace) -> int:
    """Continue --prompt with MODEL, a language model (model=gpt or model=rnn_lm trained
    on text): print the prompt and what the model writes after it, --tokens tokens drawn
    at --temperature among the --top-k likeliest, the same text for the same --seed."""
    import pandas as pd

    from dlpipe.serving.loading import open_model
    from dlpipe.serving.text import COLUMN

    if not args.prompt.strip():
        raise ConfigError("--prompt is empty: give the text for the model to continue")
    client, _ = client_and_config(args.overrides)
    settings, model_predict = open_model(args.model, client, args.run_file)
    if settings["task"] != "language_model":
        raise ConfigError(
            f"MODEL {args.model} is a {settings['task']} model, which writes no text: give a "
            "language model (trained with model=gpt or model=rnn_lm), or use dlpipe predict"
        )
    params = {
        "tokens": args.tokens,
        "temperature": args.temperature,
        "top_k": args.top_k,
        "seed": args.seed,
    }
    found = model_predict(pd.DataFrame({COLUMN: [args.prompt]}), params=params)
    print(found[COLUMN].iloc[0])
    return 0
