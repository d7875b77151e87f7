"""Atomic file writes: a reader (or DVC) sees the old file or the new one, never a partial one."""

import errno
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from dlpipe.errors import OutputError


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# mkstemp creates files readable by the owner only; outputs get the usual permissions.
_FILE_MODE = 0o666 & ~_current_umask()


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds.

    Raises:
        OutputError: `path` could not be written (a read-only folder, a full disk, a folder
            in its place or a file in its folder's), naming it and the fix; an error of
            every writer of outputs, so that each stage says it in one line.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise unwritable(path, exc) from exc
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, _FILE_MODE)
        os.replace(tmp, path)
    except OSError as exc:
        if exc.filename is not None and os.fspath(exc.filename) not in (tmp, str(path)):
            raise  # about another file, one the block read
        raise unwritable(path, exc) from exc
    finally:
        # A folder made read-only meanwhile keeps it: the next stage's clear_partial removes it.
        with suppress(OSError):
            os.remove(tmp)


def unwritable(path: Path, exc: OSError) -> OutputError:
    """What stopped `path` from being written, and what to do about it."""
    in_the_way = next((p for p in reversed(path.parents) if p.exists() and not p.is_dir()), None)
    if in_the_way is not None:
        why = f"{in_the_way} is a file, not a folder: move it away"
    elif path.is_dir():
        why = "a folder has its name: move it away"
    elif exc.errno in (errno.ENOSPC, errno.EDQUOT):
        why = f"{exc.strerror}: free space on the disk of {path.parent}"
    else:
        why = f"{exc.strerror}: make {path.parent} writable"
    return OutputError(f"cannot write {path}: {why}, then run again")


def write_text(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: Path, data: Any) -> None:
    write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def clear_partial(folder: Path) -> None:
    """Remove the temporary files of writes killed midway in `folder`, so that no partial
    file stays beside the outputs (or is cached by DVC with them)."""
    for leftover in Path(folder).glob(".*.tmp"):
        leftover.unlink(missing_ok=True)
