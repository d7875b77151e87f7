"""User images: a folder with one subfolder per class, holding PNG or JPEG files."""

from pathlib import Path
from typing import Annotated, Literal

import numpy as np

from dlpipe.config.schema.targets import Range
from dlpipe.data.raw import RawData
from dlpipe.errors import ConfigError, DataError

SUFFIXES = (".png", ".jpg", ".jpeg")
MODES = {1: "L", 3: "RGB"}


def read_image(file: Path, size: tuple[int, int], mode: str) -> np.ndarray:
    """The image `file` as float32 (channels, height, width) in [0, 1], resized to `size`
    (height, width) in PIL `mode` (L or RGB)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(file) as image:
            pixels = image.convert(mode).resize((size[1], size[0]))
            array = np.asarray(pixels, dtype=np.float32) / 255.0
    except (OSError, UnidentifiedImageError) as exc:
        raise DataError(f"image {file} cannot be read ({exc}): replace or remove it") from exc
    return array[None] if array.ndim == 2 else array.transpose(2, 0, 1)


def image_folder(
    path: str,
    size: Annotated[list[int] | None, Range(gt=0, length=2)] = None,
    channels: Literal[1, 3] = 1,
) -> RawData:
    """Every image under `path`/<class>/, resized to `size` (height, width), `channels` 1 or 3."""
    if channels not in MODES:
        raise ConfigError(f"data.channels must be 1 (grey) or 3 (colour), got {channels!r}")
    height, width = size or (32, 32)
    folder = Path(path)
    if not folder.is_dir():
        raise DataError(f"image folder {folder} does not exist: set data.path")
    classes = sorted(entry.name for entry in folder.iterdir() if entry.is_dir())
    images, labels = [], []
    for index, name in enumerate(classes):
        for file in sorted((folder / name).iterdir()):
            if file.suffix.lower() in SUFFIXES:
                images.append(read_image(file, (height, width), MODES[channels]))
                labels.append(index)
    if len(classes) < 2 or not images:
        raise DataError(
            f"image folder {folder} needs a subfolder per class (at least 2) holding "
            f"{', '.join(SUFFIXES)} files; it has {len(classes)} subfolders, {len(images)} images"
        )
    return RawData(
        x=np.stack(images),
        y=np.array(labels, dtype=np.int64),
        task="classification",
        classes=classes,
        pixel_range=1.0,  # read_image scales 8-bit pixels to [0, 1]
    )
