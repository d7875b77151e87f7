"""The `dlpipe` command, run as a user runs it, from the project's folder."""

import json
import signal
import socket
import subprocess
import sys

import pytest

from tests.conftest import BIN_DIR, ROOT, git_env
from tests.unit.test_model_catalog import USERS_NET

COMMANDS = (
    "gradcheck",
    "reproduce",
    "runs",
    "compare",
    "ui",
    "models",
    "promote",
    "predict",
    "generate",
)


def dlpipe(*args: str, cwd=ROOT, env=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN_DIR / "dlpipe"), *args],
        cwd=cwd,
        env=env or git_env(),
        capture_output=True,
        text=True,
    )


def test_help_lists_the_commands():
    done = dlpipe("--help")
    assert done.returncode == 0
    for command in COMMANDS:
        assert command in done.stdout


@pytest.mark.parametrize(
    "args", [("runs",), ("models",), ("gradcheck",), ("promote", "0" * 32), ("reproduce", "x")]
)
def test_every_command_outside_a_project_says_so_in_one_line(tmp_path, args):
    done = dlpipe(*args, cwd=tmp_path)
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr == (
        f"error: no conf/config.yaml in {tmp_path}: run dlpipe from the project's folder\n"
    )


def test_models_lists_a_users_model_from_its_config_folder_without_torch(tmp_path):
    """`dlpipe models hydra.searchpath=[...]`: the user's model beside dlpipe's, its
    settings read from its class's signature, and neither torch nor MLflow loaded."""
    (tmp_path / "mypkg").mkdir()
    (tmp_path / "mypkg" / "__init__.py").write_text("")
    (tmp_path / "mypkg" / "nets.py").write_text(USERS_NET)
    (tmp_path / "my_conf" / "model").mkdir(parents=True)
    (tmp_path / "my_conf" / "model" / "my_net.yaml").write_text("_target_: mypkg.nets.MyNet\n")
    command = [sys.executable, "-X", "importtime", str(BIN_DIR / "dlpipe"), "models", "--json"]
    done = subprocess.run(
        [*command, f"hydra.searchpath=[file://{tmp_path / 'my_conf'}]"],
        cwd=ROOT,
        env={**git_env(), "PYTHONPATH": str(tmp_path)},
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    found = {model["name"]: model for model in json.loads(done.stdout)}
    assert {"mlp", "cnn", "my_net"} <= set(found)
    assert found["my_net"]["target"] == "mypkg.nets.MyNet"
    width = next(s for s in found["my_net"]["settings"] if s["name"] == "width")
    assert (width["type"], width["value"], width["range"]) == ("int", 32, "> 0")
    timings = [line for line in done.stderr.splitlines() if line.startswith("import time:")]
    imported = {line.rsplit("|", 1)[1].strip().split(".")[0] for line in timings}
    assert not imported & {"torch", "lightning", "mlflow"}


def test_models_prints_each_model_with_a_table_of_its_settings():
    lines = dlpipe("models").stdout.splitlines()
    start = lines.index("cnn: dlpipe.models.cnn.cnn (conf/model/cnn.yaml)")
    assert lines[start + 1].split() == ["setting", "type", "value", "range"]
    assert lines[start + 3].split() == ["hidden", "int", "128", ">", "0"]


@pytest.mark.parametrize("model", ["resnet", "lstm"])
def test_gradcheck_reports_each_parameter_group(model):
    done = dlpipe("gradcheck", f"model={model}")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == (
        f"gradcheck of model '{model}' in float64 on 4 digits inputs shaped (1, 8, 8):"
    )
    groups = [line.split() for line in lines[1:-1]]
    assert groups and all(words[0] == "pass" for words in groups)
    assert lines[-1] == f"all {len(groups)} parameter groups pass"


@pytest.mark.parametrize(
    "args,message",
    [
        (("model=vgg",), "error: unknown model 'vgg': choose one of"),
        (("model.init=he",), "error: model.init must be one of default, xavier"),
        (("model.hidden",), "error: cannot compose the config with model.hidden"),
        (("--batch", "0"), "error: dlpipe gradcheck: argument --batch: a whole number from 1"),
        (("--batch", "9" * 20), "error: dlpipe gradcheck: argument --batch: a whole number from"),
    ],
)
def test_gradcheck_bad_input_is_one_line(args, message):
    done = dlpipe("gradcheck", *args)
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith(message)


# A user's GAN whose parts are named its own way, fed noise and samples.
USERS_PAIR = """
import math

from torch import nn


class Pair(nn.Module):
    task = "generation"

    def __init__(self, input_shape, num_outputs, noise: int = 3):
        super().__init__()
        self.input_shape, self.noise = tuple(input_shape), noise
        self.maker = nn.Linear(noise, math.prod(input_shape))
        self.critic = nn.Sequential(nn.Flatten(), nn.Linear(math.prod(input_shape), 1))

    def forward(self, z):
        return self.maker(z).reshape(len(z), *self.input_shape)

    def part_inputs(self):
        return {"maker": (self.noise,), "critic": self.input_shape}
"""


def test_gradcheck_feeds_each_part_of_a_users_model_what_it_says(tmp_path):
    (tmp_path / "mypkg").mkdir()
    (tmp_path / "mypkg" / "__init__.py").write_text("")
    (tmp_path / "mypkg" / "pair.py").write_text(USERS_PAIR)
    (tmp_path / "my_conf" / "model").mkdir(parents=True)
    (tmp_path / "my_conf" / "model" / "pair.yaml").write_text("_target_: mypkg.pair.Pair\n")
    search = f"hydra.searchpath=[file://{tmp_path / 'my_conf'}]"
    env = {**git_env(), "PYTHONPATH": str(tmp_path)}
    done = dlpipe("gradcheck", "model=pair", search, env=env)
    assert done.returncode == 0, done.stderr
    groups = [line.split()[:2] for line in done.stdout.splitlines()[1:-1]]
    assert groups == [
        ["pass", "maker.weight"],
        ["pass", "maker.bias"],
        ["pass", "critic.1"],
    ]


def test_ctrl_c_ends_a_command_quietly():
    """Ctrl-C while `dlpipe runs` waits for a tracking server's answer: no traceback, and
    the exit code a shell gives a command that SIGINT ended (130)."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        server.settimeout(60)
        uri = f"http://127.0.0.1:{server.getsockname()[1]}"
        process = subprocess.Popen(
            [str(BIN_DIR / "dlpipe"), "runs", f"tracking.uri={uri}"],
            cwd=ROOT,
            env=git_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        connection, _ = server.accept()  # it is waiting for the answer, never sent
        with connection:
            process.send_signal(signal.SIGINT)
            out, err = process.communicate(timeout=60)
    assert (process.returncode, out, err) == (130, "", "")


def test_a_process_ending_in_an_error_still_freezes_its_objects_for_a_quick_exit():
    """The interpreter's last garbage collection over torch's and MLflow's modules costs a
    stage seconds: however the work ends, its objects are frozen out of it."""
    import gc

    from dlpipe.exits import quick_exit

    gc.unfreeze()
    with pytest.raises(SystemExit), quick_exit():
        raise SystemExit(2)
    assert gc.get_freeze_count() > 0
    gc.unfreeze()
