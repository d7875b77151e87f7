"""A user's own model, from their own package and config folder, where a built-in goes.

The package and the config are the README's own ("Extend dlpipe > Your own model"), so
the example there is the one tested here.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from sklearn.datasets import load_digits

from tests.conftest import (
    BIN_DIR,
    ROOT,
    assert_one_line_error,
    git_env,
    make_project,
    run,
    stage,
    start_until,
)

pytestmark = pytest.mark.slow

SECTION = "### Your own model"
# A code block of the README that is a file of the example: its first line names it.
_FILE_BLOCK = re.compile(
    r"```(?:python|yaml)\n# (?P<path>[\w/.]+\.(?:py|yaml))\b[^\n]*\n(?P<body>.*?)```", re.S
)


def readme_files() -> dict[str, str]:
    """The example's files by path, as the README's section shows them."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index(SECTION) :].split("\n### ", 1)[0]
    return {match["path"]: match["body"] for match in _FILE_BLOCK.finditer(section)}


def add_own_model(project: Path) -> None:
    """The README's package and config folder, and the config folder on the search path."""
    for path, body in readme_files().items():
        (project / path).parent.mkdir(parents=True, exist_ok=True)
        (project / path).write_text(body)
    (project / "mypkg" / "__init__.py").write_text("")
    config = project / "conf" / "config.yaml"
    text = config.read_text()
    assert text.count("\nhydra:\n") == 1
    config.write_text(text.replace("\nhydra:\n", "\nhydra:\n  searchpath:\n    - file://myconf\n"))


@pytest.fixture(scope="module")
def own(tmp_path_factory) -> Path:
    """A project with the README's own model, its data prepared and the model trained."""
    project = make_project(tmp_path_factory.mktemp("plugins") / "project")
    add_own_model(project)
    run([sys.executable, "pipelines/prepare.py"], project)
    run([sys.executable, "pipelines/train.py", "model=my_net", "trainer.max_epochs=2"], project)
    return project


def record(project: Path) -> dict:
    return json.loads((project / "models" / "run.json").read_text())


def dlpipe(project: Path, *args: str) -> subprocess.CompletedProcess:
    return run([str(BIN_DIR / "dlpipe"), *args], project, check=False)


def test_the_readme_shows_the_package_and_the_config():
    assert set(readme_files()) == {"mypkg/nets.py", "myconf/model/my_net.yaml"}


def test_own_model_trains_from_its_config_folder(own: Path):
    model = record(own)["model"]
    assert model["_target_"] == "mypkg.nets.MyNet"
    assert model["width"] == 64


@pytest.mark.parametrize(
    "override,fragments",
    [
        ("+model.depth=3", ("model.depth is not a setting of", "MyNet", "width, dropout")),
        ("model.width=wide", ("model.width", "wide")),
        ("model.width=0", ("model.width", "> 0")),
    ],
)
def test_a_bad_setting_of_own_model_is_one_line_before_torch(own: Path, override, fragments):
    done = run(
        [sys.executable, "-X", "importtime", "pipelines/train.py", "model=my_net", override],
        own,
        check=False,
    )
    timings = [line for line in done.stderr.splitlines() if line.startswith("import time:")]
    imported = {line.rsplit("|", 1)[1].strip().split(".")[0] for line in timings}
    assert "torch" not in imported
    rest = [line for line in done.stderr.splitlines() if line.strip() and line not in timings]
    done.stderr = "\n".join(rest)
    assert_one_line_error(done, *fragments)


def test_own_model_named_on_the_command_line(own: Path):
    done = dlpipe(own, "gradcheck", "~model", "+model._target_=mypkg.nets.MyNet", "+model.width=8")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1].endswith("parameter groups pass")


def test_gradcheck_of_own_model(own: Path):
    done = dlpipe(own, "gradcheck", "model=my_net")
    assert done.returncode == 0, done.stderr
    assert "gradcheck of model 'my_net'" in done.stdout


def test_own_model_sweeps_and_searches(own: Path):
    sweep = stage(own, "train", "-m", "model=my_net", "model.width=16,32", "trainer.max_epochs=1")
    assert sweep.returncode == 0, sweep.stderr
    search = stage(
        own,
        "train",
        "-m",
        "search=digits",
        "model=my_net",
        "search.n_trials=2",
        "trainer.max_epochs=1",
    )
    assert search.returncode == 0, search.stderr
    import optuna

    study = optuna.load_study(study_name="digits-my_net", storage=f"sqlite:///{own / 'optuna.db'}")
    assert [trial.state.name for trial in study.trials] == ["COMPLETE"] * 2


LOAD_ELSEWHERE = textwrap.dedent(
    """
    import sys
    import mlflow.pyfunc
    import numpy as np

    mlflow.set_tracking_uri(sys.argv[1])
    model = mlflow.pyfunc.load_model(sys.argv[2])
    inputs = np.load(sys.argv[3])["x"]
    print(",".join(str(label) for label in model.predict(inputs)["class"]))
    """
)


def test_own_model_is_served_where_its_package_is_not(own: Path, tmp_path: Path):
    """Evaluate registers it; `dlpipe predict` and `mlflow.pyfunc.load_model` in a fresh
    process, away from the project folder, predict the same classes."""
    run([sys.executable, "pipelines/evaluate.py"], own)
    samples = load_digits().images[:8].reshape(8, 1, 8, 8).astype(np.float32)
    inputs = tmp_path / "digits.npz"
    np.savez(inputs, x=samples)
    output = tmp_path / "predictions.csv"
    done = dlpipe(own, "predict", "models:/digits@champion", str(inputs), "--output", str(output))
    assert done.returncode == 0, done.stderr
    predicted = pd.read_csv(output)["class"].astype(str).tolist()

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {key: value for key, value in git_env().items() if key != "PYTHONPATH"}
    loaded = subprocess.run(
        [
            sys.executable,
            "-c",
            LOAD_ELSEWHERE,
            f"sqlite:///{own / 'mlflow.db'}",
            "models:/digits@champion",
            str(inputs),
        ],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
    )
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stdout.strip().splitlines()[-1].split(",") == predicted


def test_own_model_transfers_from_its_first_run(own: Path):
    source = record(own)["run_id"]
    done = stage(own, "train", "model=my_net", f"transfer.source={source}", "trainer.max_epochs=1")
    assert done.returncode == 0, done.stderr
    assert "fresh layers.4.bias, layers.4.weight" in done.stdout + done.stderr


ON_A_WORKER = textwrap.dedent(
    """
    import sys
    from pathlib import Path

    import ray

    from dlpipe.cluster import connect as cluster

    cluster.connect(None, 15, [Path(sys.argv[1])])

    @ray.remote
    def where() -> str:
        import mypkg.nets

        return mypkg.nets.__file__

    print(ray.get(where.remote()))
    """
)


def test_ray_workers_import_the_package_shipped_to_them(own: Path, tmp_path: Path):
    """Started away from the project folder, as on another host: the workers import the
    user's package from the copy Ray ships them."""
    done = run([sys.executable, "-c", ON_A_WORKER, str(own / "mypkg")], tmp_path)
    assert "runtime_resources" in done.stdout.strip().splitlines()[-1]


def test_own_model_killed_mid_training_resumes_into_its_run(own: Path, tmp_path: Path):
    """kill -9 during a training of the user's model, then the same command: it goes on
    from models/last.ckpt in the same MLflow run, every epoch logged once."""
    project = tmp_path / "project"
    shutil.copytree(own, project, symlinks=True)
    shutil.rmtree(project / "models")
    epochs = 6
    command = [
        sys.executable,
        "pipelines/train.py",
        "model=my_net",
        f"trainer.max_epochs={epochs}",
        f"trainer.early_stopping.patience={epochs}",
    ]
    killed = start_until(command, project, f"epoch 1/{epochs}", start_new_session=True)
    os.killpg(killed.pid, signal.SIGKILL)
    killed.communicate(timeout=60)
    run_id = json.loads((project / "models" / "resume.json").read_text())["run_id"]

    resumed = run(command, project)
    said = resumed.stdout + resumed.stderr
    assert re.search(rf"resuming run {run_id} from models/last\.ckpt after epoch \d", said), said
    client = MlflowClient(f"sqlite:///{project / 'mlflow.db'}")
    assert client.get_run(run_id).info.status == "FINISHED"
    steps = [metric.step for metric in client.get_metric_history(run_id, "val/loss")]
    assert sorted(steps) == list(range(epochs))
    assert record(project)["run_id"] == run_id
