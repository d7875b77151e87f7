"""A user's config folder on Hydra's search path, and a user's code found to ship it."""

import shutil
from pathlib import Path

import pytest

from dlpipe.config.compose import check_group_choices, compose_checked
from dlpipe.config.usercode import code_folders
from tests.conftest import CONF_DIR

NETS = """
from torch import nn


class Tiny(nn.Module):
    def __init__(self, input_shape: tuple[int, ...], num_outputs: int, width: int = 4):
        super().__init__()
"""


@pytest.fixture
def user_project(tmp_path: Path, monkeypatch) -> Path:
    """A project folder with conf/, a package `mypkg` and a config folder `myconf`."""
    shutil.copytree(CONF_DIR, tmp_path / "conf")
    (tmp_path / "mypkg").mkdir()
    (tmp_path / "mypkg" / "nets.py").write_text(NETS)
    (tmp_path / "myconf" / "model").mkdir(parents=True)
    (tmp_path / "myconf" / "model" / "tiny.yaml").write_text(
        "_target_: mypkg.nets.Tiny\nname: tiny\nwidth: 8\n"
    )
    monkeypatch.chdir(tmp_path)
    return tmp_path


def on_search_path(project: Path) -> None:
    config = project / "conf" / "config.yaml"
    config.write_text(config.read_text() + "  searchpath:\n    - file://myconf\n")


def test_an_option_of_a_folder_on_the_search_path_is_composed(user_project: Path):
    on_search_path(user_project)
    cfg = compose_checked(user_project / "conf", ["model=tiny", "model.width=16"])
    assert cfg.model._target_ == "mypkg.nets.Tiny" and cfg.model.width == 16


def test_the_search_path_given_on_the_command_line(user_project: Path):
    args = ["hydra.searchpath=[file://myconf]", "model=tiny"]
    check_group_choices(args, user_project / "conf")
    assert compose_checked(user_project / "conf", args).model.width == 8


def test_an_unknown_option_lists_every_folder(user_project: Path, capsys):
    on_search_path(user_project)
    with pytest.raises(SystemExit) as stopped:
        check_group_choices(["model=tiny,huge"], user_project / "conf")
    assert stopped.value.code == 2
    line = capsys.readouterr().err.strip()
    assert line.startswith("error: unknown model 'huge': choose one of ")
    assert "cnn" in line and "tiny" in line
    assert line.endswith("(conf/model/*.yaml, myconf/model/*.yaml)")


def test_a_users_package_is_shipped_and_installed_ones_are_not(user_project: Path):
    config = {
        "model": {"_target_": "mypkg.nets.Tiny"},
        "hydra": {
            "callbacks": {"sweep": {"_target_": "dlpipe.tracking.sweep.MlflowSweepCallback"}}
        },
        "search": {"pruner": {"_target_": "optuna.pruners.MedianPruner"}},
        "others": [{"_target_": "mypkg.nets.Tiny"}],
    }
    assert code_folders(config) == [(user_project / "mypkg").resolve()]


@pytest.mark.parametrize(
    "arg,message",
    [
        ("hydra.searchpath=file://myconf", "error: hydra.searchpath must be a list of folders"),
        ("hydra.searchpath=[file://myconf", "error: cannot read hydra.searchpath=[file://myconf"),
    ],
)
def test_a_search_path_that_is_not_a_list_is_one_line(user_project: Path, capsys, arg, message):
    with pytest.raises(SystemExit) as stopped:
        check_group_choices([arg, "model=tiny"], user_project / "conf")
    assert stopped.value.code == 2
    assert capsys.readouterr().err.strip().startswith(message)
