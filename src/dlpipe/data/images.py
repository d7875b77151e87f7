"""User images: a folder with one subfolder per class, holding PNG or JPEG files.

Their channels and size are the files' own unless configured: colour stays colour, and
images of another size than the one chosen are resized to it, which is said once.
"""

import functools
import logging
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Literal

import numpy as np

from dlpipe.config.schema.targets import Range
from dlpipe.data.raw import RawData
from dlpipe.data.shard_prepare import Listing
from dlpipe.data.shards import Layout
from dlpipe.errors import ConfigError, DataError

log = logging.getLogger(__name__)

SUFFIXES = (".png", ".jpg", ".jpeg")
MODES = {1: "L", 3: "RGB"}
# PIL modes that hold no colour whatever their pixels.
GREY_MODES = ("1", "L", "LA", "La", "I", "I;16", "F")


def read_image(file: Path, size: tuple[int, int], mode: str) -> np.ndarray:
    """The image `file` as 8-bit (channels, height, width), resized to `size` (height,
    width) in PIL `mode` (L or RGB)."""
    with _opened(file) as image:
        array = np.asarray(image.convert(mode).resize((size[1], size[0])), dtype=np.uint8)
    return array[None] if array.ndim == 2 else array.transpose(2, 0, 1)


def read_images(files: list[Path], size: tuple[int, int], mode: str) -> np.ndarray:
    """The images `files` as one 8-bit array (n, channels, height, width)."""
    return np.stack([read_image(file, size, mode) for file in files])


@contextmanager
def _opened(file: Path) -> Iterator:
    """The image `file`, open while the block runs; one that cannot be read is named."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(file) as image:
            yield image
    except (OSError, UnidentifiedImageError) as exc:
        raise DataError(f"image {file} cannot be read ({exc}): replace or remove it") from exc


def image_listing(
    path: str,
    size: Annotated[list[int] | None, Range(gt=0, length=2)] = None,
    channels: Literal[1, 3] | None = None,
) -> Listing:
    """The images under `path`/<class>/ as a Listing: read later, 8-bit, a shard at a time
    when they are many (see shard_prepare); their size and channels as image_folder's."""
    if channels is not None and channels not in MODES:
        raise ConfigError(f"data.channels must be 1 (grey) or 3 (colour), got {channels!r}")
    folder = Path(path)
    classes, found = class_files(folder, SUFFIXES)
    shapes = _sizes(found)
    size, channels = detected(found, shapes, size, channels)
    resized = sum(shape != size for shape in shapes)
    if resized:
        log.info(
            f"images: resized {resized} of {len(found)} images to {size[0]}x{size[1]} "
            "(height x width; data.size sets another)"
        )
    return Listing(
        items=[file for file, _ in found],
        y=np.array([label for _, label in found], dtype=np.int64),
        classes=classes,
        layout=Layout((channels, *size), "uint8"),
        read=functools.partial(read_images, size=size, mode=MODES[channels]),
        unit=255.0,
        pixel_range=1.0,  # 8-bit pixels are scaled to [0, 1]
    )


def image_folder(
    path: str,
    size: Annotated[list[int] | None, Range(gt=0, length=2)] = None,
    channels: Literal[1, 3] | None = None,
) -> RawData:
    """Every image under `path`/<class>/, resized to `size` (height, width) and read with
    `channels` 1 (grey) or 3 (colour); null: found from the files (see `detected`)."""
    return image_listing(path, size, channels).in_memory()


# Image folders larger than memory are prepared in shards (see shard_prepare).
image_folder.listing = image_listing


def class_files(
    folder: Path, suffixes: tuple[str, ...], kind: tuple[str, str] = ("image", "images")
) -> tuple[list[str], list[tuple[Path, int]]]:
    """The class names (subfolders of `folder`) and every file of `suffixes` in them with
    its class's index; `kind`: what the files are, one and many, for the message."""
    if not folder.is_dir():
        raise DataError(f"{kind[0]} folder {folder} does not exist: set data.path")
    classes = sorted(entry.name for entry in folder.iterdir() if entry.is_dir())
    found = [
        (file, index)
        for index, name in enumerate(classes)
        for file in sorted((folder / name).iterdir())
        if file.suffix.lower() in suffixes
    ]
    if len(classes) < 2 or not found:
        raise DataError(
            f"{kind[0]} folder {folder} needs a subfolder per class (at least 2) holding "
            f"{', '.join(suffixes)} files; it has {len(classes)} subfolders, "
            f"{len(found)} {kind[1]}"
        )
    return classes, found


def detected(
    found: list[tuple[Path, int]],
    shapes: list[tuple[int, int]],
    size: list[int] | None,
    channels: int | None,
) -> tuple[tuple[int, int], int]:
    """The size (height, width) and channels to read the images (`found`, of `shapes`)
    with: the configured ones, else the most common of their sizes, and 3 when any image
    holds colour, 1 when none does.

    The files are opened once more to look for colour: reading them at their own size
    first would hold every image twice in memory.
    """
    if size is None:
        size = Counter(shapes).most_common(1)[0][0]
    if channels is None:
        channels = 3 if any(_colour(file) for file, _ in found) else 1
    return (int(size[0]), int(size[1])), channels


def _sizes(found: list[tuple[Path, int]]) -> list[tuple[int, int]]:
    """Each image's (height, width), read from its header."""
    shapes = []
    for file, _ in found:
        with _opened(file) as image:
            shapes.append((image.height, image.width))
    return shapes


def _colour(file: Path) -> bool:
    """Whether the image holds colour: a grey mode never does; RGB, RGBA or a palette does
    when some pixel's channels differ."""
    with _opened(file) as image:
        if image.mode in GREY_MODES:
            return False
        pixels = np.asarray(image.convert("RGB"))
    return bool((pixels != pixels[..., :1]).any())
