"""Samples of text from a language model in training, logged to its MLflow run each epoch."""

import lightning.pytorch as pl

from dlpipe.data import tokenise
from dlpipe.paths import PREPARED_DIR
from dlpipe.tasks.writing import prompts, samples


def text_samples(meta: dict, val_loader, seed: int, saved: str | None = None) -> list:
    """The callback logging samples, prompted by the starts of validation windows (held in
    `val_loader`), for a language model's training; else none. The tokeniser is read from
    the prepared data, or from `saved`, its JSON, where that is not at hand (a Ray worker)."""
    if meta["task"] != "language_model":
        return []
    if saved is None:
        tokeniser = tokenise.load(PREPARED_DIR / meta["text"]["file"])
    else:
        tokeniser = tokenise.from_json(saved)
    starts = prompts(val_loader.x)
    return [TextSamples(tokeniser, starts, meta["text"]["context"], seed)]


class TextSamples(pl.Callback):
    """After each validation, what the model writes from the prompts, logged as the
    artifact samples/epoch_<n>.txt (by the process that logs metrics)."""

    def __init__(self, tokeniser, starts, context: int, seed: int):
        self.tokeniser, self.starts = tokeniser, starts
        self.context, self.seed = context, seed

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        logger = trainer.logger
        if trainer.sanity_checking or getattr(logger, "run_id", None) is None:
            return
        epoch = trainer.current_epoch + 1
        text = samples(
            pl_module.model,
            self.tokeniser,
            self.starts.to(pl_module.device),
            self.context,
            self.seed,
        )
        logger.client.log_text(logger.run_id, text, f"samples/epoch_{epoch:03d}.txt")
