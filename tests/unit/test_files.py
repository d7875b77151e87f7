"""Atomic writes: an output that cannot be written is one OutputError naming it and the fix,
with nothing half-written left beside it."""

import re

import pytest

from dlpipe import files
from dlpipe.errors import OutputError


def leftovers(folder) -> list[str]:
    return [path.name for path in folder.iterdir() if path.name.endswith(".tmp")]


def test_a_folder_in_the_files_place_is_named(tmp_path):
    (tmp_path / "last.ckpt").mkdir()
    with pytest.raises(OutputError) as raised:
        files.write_text(tmp_path / "last.ckpt", "weights")
    assert str(raised.value) == (
        f"cannot write {tmp_path / 'last.ckpt'}: a folder has its name: move it away, "
        "then run again"
    )
    assert (tmp_path / "last.ckpt").is_dir() and not leftovers(tmp_path)


@pytest.mark.parametrize("target", ["models/run.json", "models/plots/curve.png"])
def test_a_file_in_a_folders_place_is_named(tmp_path, target):
    (tmp_path / "models").write_text("not a folder")
    in_the_way = re.escape(f"{tmp_path / 'models'} is a file, not a folder: move it away")
    with pytest.raises(OutputError, match=in_the_way):
        files.write_text(tmp_path / target, "{}")
    assert (tmp_path / "models").read_text() == "not a folder"


def test_a_read_only_folder_is_named_with_the_fix(read_only_folder):
    with pytest.raises(OutputError, match=r"Permission denied: make .* writable, then run"):
        files.write_text(read_only_folder / "metrics.json", "{}")


def test_an_error_about_another_file_is_left_as_it_is(tmp_path):
    with pytest.raises(FileNotFoundError), files.atomic_path(tmp_path / "copy.csv") as tmp:
        tmp.write_bytes((tmp_path / "missing.csv").read_bytes())
    assert not leftovers(tmp_path) and not (tmp_path / "copy.csv").exists()
