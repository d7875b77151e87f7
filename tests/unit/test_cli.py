"""The `dlpipe` command, run as a user runs it, from the project's folder."""

import signal
import socket
import subprocess

import pytest

from tests.conftest import BIN_DIR, ROOT, git_env


def dlpipe(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN_DIR / "dlpipe"), *args], cwd=ROOT, env=git_env(), capture_output=True, text=True
    )


def test_help_lists_the_commands():
    done = dlpipe("--help")
    assert done.returncode == 0
    for command in ("gradcheck", "runs", "compare", "ui"):
        assert command in done.stdout


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
