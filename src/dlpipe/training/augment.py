"""Image augmentation of every training batch, with kornia's transforms (a maintained
library, working on whole batches on the batch's device), drawn from torch's random
state: seeded by `seed`, and carried across a resume with it (see resume.RandomState).

Prepared images are standardised; the transforms work on pixels in [0, 1] (colour jitter
clamps to it), so each batch is taken back to pixels, transformed and standardised again.
"""

import lightning.pytorch as pl
import torch
from omegaconf import DictConfig

from dlpipe.config import checks as config
from dlpipe.errors import ConfigError


def augmentation(cfg: DictConfig, meta: dict) -> list:
    """The callback that augments training batches as trainer.augment says; none when null."""
    settings = cfg.trainer.get("augment")
    if settings is None:
        return []
    shape = meta["input_shape"]
    if len(shape) != 3:
        raise ConfigError(
            f"trainer.augment transforms images, but data '{meta['name']}' holds samples "
            f"shaped {tuple(shape)}: set trainer.augment=null"
        )
    return [Augment(config.to_dict(settings), meta)]


class Augment(pl.Callback):
    """Replace each training batch's images by randomly transformed ones, in place."""

    def __init__(self, settings: dict, meta: dict) -> None:
        import kornia.augmentation as K

        channels, height, width = meta["input_shape"]
        steps = []
        if settings.get("crop"):
            steps.append(K.RandomCrop((height, width), padding=settings["crop"]))
        if settings.get("flip"):
            steps.append(K.RandomHorizontalFlip())
        if settings.get("jitter"):
            strength = settings["jitter"]
            # Saturation needs colour: grey images get brightness and contrast only.
            colour = strength if channels == 3 else 0.0
            steps.append(K.ColorJitter(strength, strength, colour, 0.0, p=1.0))
        self.transform = K.AugmentationSequential(*steps)
        stats = meta.get("stats") or {}
        scale = float(meta.get("pixel_range") or 1.0)
        self.mean = torch.tensor(stats.get("x_mean", 0.0), dtype=torch.float32)
        self.std = torch.tensor(stats.get("x_std", 1.0), dtype=torch.float32)
        self.scale = scale

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        # Training batches are the loader's own copies (shuffled, or read from shards), so
        # writing into them leaves the prepared data as it was.
        x = batch[0]
        mean, std = self.mean.to(x.device), self.std.to(x.device)
        pixels = (x * std + mean) / self.scale
        with torch.no_grad():
            x.copy_((self.transform(pixels) * self.scale - mean) / std)
