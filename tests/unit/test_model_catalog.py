"""`dlpipe models`' listing: dlpipe's models and a user's, read from their signatures."""

from pathlib import Path

import pytest

from dlpipe.models.catalog import list_models
from tests.conftest import CONF_DIR

USERS_NET = """
from typing import Annotated, Literal

import torch
from torch import nn

from dlpipe.config.schema.targets import Range


class MyNet(nn.Module):
    def __init__(
        self,
        input_shape,
        num_outputs: int,
        width: Annotated[int, Range(gt=0)] = 32,
        act: Literal["relu", "tanh"] = "relu",
        scale: float | None = None,
    ):
        super().__init__()
"""


@pytest.fixture
def users_project(tmp_path: Path, monkeypatch) -> Path:
    """A project folder with its own package and config folder holding model/my_net.yaml."""
    (tmp_path / "mypkg").mkdir()
    (tmp_path / "mypkg" / "__init__.py").write_text("")
    (tmp_path / "mypkg" / "nets.py").write_text(USERS_NET)
    (tmp_path / "my_conf" / "model").mkdir(parents=True)
    (tmp_path / "my_conf" / "model" / "my_net.yaml").write_text(
        "_target_: mypkg.nets.MyNet\nwidth: 64\n"
    )
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_every_builtin_model_is_listed_with_its_settings():
    found = {model.name: model for model in list_models([CONF_DIR])}
    assert set(found) == {path.stem for path in (CONF_DIR / "model").glob("*.yaml")}
    assert all(model.target and not model.problem for model in found.values())
    cnn = {setting.name: setting for setting in found["cnn"].settings}
    assert (cnn["hidden"].type, cnn["hidden"].value, cnn["hidden"].range) == ("int", 128, "> 0")
    assert (cnn["dropout"].type, cnn["dropout"].range) == ("float", ">= 0, < 1")
    assert cnn["channels"].type == "list[int]"
    assert cnn["init"].range == "one of default, xavier, kaiming, normal"


def test_a_users_model_on_the_search_path_is_listed_like_a_builtin(users_project):
    found = {model.name: model for model in list_models([CONF_DIR, users_project / "my_conf"])}
    assert "cnn" in found
    mine = found["my_net"]
    assert (mine.target, mine.problem) == ("mypkg.nets.MyNet", "")
    rows = {s.name: (s.type, s.value, s.range) for s in mine.settings}
    assert rows == {
        "width": ("int", 64, "> 0"),  # the YAML's value, the signature's type and range
        "act": ("str", "relu", "one of relu, tanh"),  # the signature's default
        "scale": ("float | None", None, ""),
        "init": ("str", "default", "one of default, xavier, kaiming, normal"),
    }


def test_a_model_whose_code_is_not_found_is_listed_with_the_reason(users_project):
    (users_project / "my_conf" / "model" / "lost.yaml").write_text("_target_: nowhere.Net\n")
    (lost,) = [m for m in list_models([users_project / "my_conf"]) if m.name == "lost"]
    assert lost.target == "nowhere.Net"
    assert lost.problem.startswith("no module named 'nowhere'")
    assert lost.settings == []
