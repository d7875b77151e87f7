"""trainer.augment: training batches of images transformed by kornia, seeded, in place."""

import pytest
import torch
from omegaconf import OmegaConf

from dlpipe.config.schema.validate import validate
from dlpipe.errors import ConfigError
from dlpipe.training.augment import augmentation

META = {
    "name": "images",
    "input_shape": [3, 6, 5],
    "pixel_range": 1.0,
    "stats": {"x_mean": [[[[0.5]], [[0.4]], [[0.3]]]], "x_std": [[[[0.2]], [[0.25]], [[0.3]]]]},
}


def augmented(settings: dict, x: torch.Tensor, seed: int) -> torch.Tensor:
    cfg = OmegaConf.create({"trainer": {"augment": settings}})
    (callback,) = augmentation(cfg, META)
    torch.manual_seed(seed)
    batch = (x.clone(), torch.zeros(len(x)))
    callback.on_train_batch_start(None, None, batch, 0)
    return batch[0]


def standardised_images(count: int = 16) -> torch.Tensor:
    pixels = torch.rand(count, 3, 6, 5, generator=torch.Generator().manual_seed(0))
    mean = torch.tensor(META["stats"]["x_mean"])
    return (pixels - mean) / torch.tensor(META["stats"]["x_std"])


def test_flip_mirrors_some_images_and_the_seed_decides_which():
    x = standardised_images()
    flipped = augmented({"flip": True}, x, seed=1)
    mirrored = [torch.allclose(a, b.flip(-1), atol=1e-5) for a, b in zip(flipped, x, strict=True)]
    kept = [torch.allclose(a, b, atol=1e-5) for a, b in zip(flipped, x, strict=True)]
    assert all(m or k for m, k in zip(mirrored, kept, strict=True))
    assert 0 < sum(mirrored) < len(x)
    assert torch.equal(flipped, augmented({"flip": True}, x, seed=1))
    assert not torch.equal(flipped, augmented({"flip": True}, x, seed=2))


def test_crop_and_jitter_keep_the_shape_and_the_pixel_range():
    x = standardised_images()
    out = augmented({"crop": 2, "flip": True, "jitter": 0.4}, x, seed=0)
    assert out.shape == x.shape and not torch.allclose(out, x)
    pixels = out * torch.tensor(META["stats"]["x_std"]) + torch.tensor(META["stats"]["x_mean"])
    assert pixels.min() >= -1e-5 and pixels.max() <= 1 + 1e-5


def test_no_augment_adds_nothing():
    assert augmentation(OmegaConf.create({"trainer": {"augment": None}}), META) == []


def test_augment_of_data_that_is_no_images_is_refused():
    cfg = OmegaConf.create({"trainer": {"augment": {"flip": True}}})
    with pytest.raises(ConfigError, match=r"trainer.augment transforms images.*\(64,\)"):
        augmentation(cfg, {**META, "input_shape": [64]})


def test_augment_settings_are_checked(make_cfg):
    cfg = make_cfg("trainer.augment={crop: 0}")
    with pytest.raises(ConfigError, match=r"trainer\.augment\.crop"):
        validate(cfg)
