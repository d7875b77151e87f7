"""The model registry and `dlpipe promote` / `dlpipe predict`, against a real store made by
two real tiny trainings: a weak one (registered first, so champion) and a better one
(registered without promotion).

`dlpipe` runs in this process where a subprocess would only add start-up time; the tests
marked so run it as a user does.
"""

import json
import sys
from dataclasses import dataclass
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from PIL import Image

from tests.conftest import (
    BIN_DIR,
    assert_one_line_error,
    dlpipe_in,
    file_contents,
    make_project,
    restored,
    run,
    stage,
)

pytestmark = pytest.mark.slow

PROBABILITIES = [f"prob_{digit}" for digit in range(10)]


@dataclass(frozen=True)
class Store:
    project: Path
    weak: str  # run ids
    good: str
    weak_log: str  # what the weak run's evaluation printed

    @property
    def uri(self) -> str:
        return f"sqlite:///{self.project / 'mlflow.db'}"


def train_and_evaluate(project: Path, train: list[str], evaluate: list[str]) -> tuple[str, str]:
    """Train and evaluate with these overrides; the run's id and what evaluate printed."""
    run([sys.executable, "pipelines/train.py", *train], project)
    done = run([sys.executable, "pipelines/evaluate.py", *evaluate], project)
    record = json.loads((project / "models" / "run.json").read_text())
    return record["run_id"], done.stdout + done.stderr


def champion(client: MlflowClient) -> str:
    return str(client.get_registered_model("digits").aliases["champion"])


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Store:
    project = make_project(tmp_path_factory.mktemp("registry") / "project")
    run([sys.executable, "pipelines/prepare.py"], project)
    weak, weak_log = train_and_evaluate(project, ["trainer.max_epochs=1", "optim.lr=1e-6"], [])
    good, _ = train_and_evaluate(project, ["trainer.max_epochs=2"], ["registry.promote=false"])
    return Store(project, weak, good, weak_log)


@pytest.fixture
def dlpipe(store: Store, monkeypatch, capsys):
    """Run `dlpipe ARGS` in the project; its exit code, stdout and stderr."""
    return dlpipe_in(store.project, monkeypatch, capsys)


@pytest.fixture(scope="module")
def test_split(store: Store) -> tuple[np.ndarray, np.ndarray]:
    """The test split as raw pixels (0 to 16), and its labels."""
    prepared = store.project / "data" / "prepared"
    stats = json.loads((prepared / "meta.json").read_text())["stats"]
    with np.load(prepared / "test.npz") as arrays:
        x, y = arrays["x"], arrays["y"]
    raw = x * np.asarray(stats["x_std"]) + np.asarray(stats["x_mean"])
    return raw.astype(np.float32), y


def test_versions_registered_with_signature_and_first_one_champion(store: Store):
    client = MlflowClient(store.uri)
    versions = {v.run_id: v for v in client.search_model_versions("name = 'digits'")}
    assert set(versions) == {store.weak, store.good}
    assert "promoted digits version 1" in store.weak_log and "there was none" in store.weak_log
    assert champion(client) == "1"
    mlflow.set_tracking_uri(store.uri)
    signature = mlflow.models.get_model_info("models:/digits/2").signature
    (tensor,) = signature.inputs.inputs
    assert tensor.shape == (-1, 1, 8, 8) and str(tensor.type) == "float32"
    assert signature.outputs.input_names() == ["class", *PROBABILITIES]


def test_promote_moves_the_champion_to_a_better_run_only(store: Store, dlpipe):
    client = MlflowClient(store.uri)
    code, out, _ = dlpipe("promote", store.good)
    assert code == 0 and out.startswith(f"promoted digits version 2 (run {store.good}) to champion")
    assert "test/acc" in out and "of version 1" in out and "higher is better" in out
    assert champion(client) == "2"
    code, out, _ = dlpipe("promote", store.weak)
    assert code == 0 and out.startswith(f"digits version 2 (run {store.good}) stays champion")
    assert champion(client) == "2"


def test_champion_loads_with_pyfunc_and_scores_as_evaluate_did(store: Store, test_split):
    x, y = test_split
    mlflow.set_tracking_uri(store.uri)
    model = mlflow.pyfunc.load_model("models:/digits@champion")
    found = model.predict(x)
    accuracy = float(np.mean(found["class"].astype(int).to_numpy() == y))
    client = MlflowClient(store.uri)
    champion = client.get_model_version_by_alias("digits", "champion")
    reported = client.get_run(champion.run_id).data.metrics["test/acc"]
    assert accuracy == pytest.approx(reported, abs=1e-6)
    assert np.allclose(found[PROBABILITIES].sum(axis=1), 1, atol=1e-5)


def test_predict_from_csv_npz_and_images(store: Store, test_split, dlpipe, tmp_path: Path):
    x, _ = test_split
    table = pd.DataFrame(x.reshape(len(x), -1)).add_prefix("pixel_")
    table.to_csv(tmp_path / "x.csv", index=False)
    np.savez(tmp_path / "x.npz", x=x[:7])
    folder = tmp_path / "images"
    folder.mkdir()
    for index, image in enumerate(x[:5]):
        pixels = np.round(image[0] / 16 * 255).astype(np.uint8)
        Image.fromarray(pixels, mode="L").save(folder / f"digit{index}.png")
    outputs = {}
    for model, source, rows in (
        ("models:/digits@champion", "x.csv", len(x)),
        (store.good, "x.npz", 7),
        ("models/best.ckpt", "x.npz", 7),  # the good run's checkpoint, run.json beside it
        ("models:/digits/2", "images", 5),
    ):
        out = tmp_path / f"{source}.{len(outputs)}.csv"
        code, printed, err = dlpipe("predict", model, str(tmp_path / source), "--output", str(out))
        assert code == 0, err
        assert printed == f"{rows} predictions written to {out}\n"
        outputs[model] = pd.read_csv(out)
        assert len(outputs[model]) == rows
    assert list(outputs["models:/digits@champion"].columns) == ["class", *PROBABILITIES]
    assert list(outputs["models:/digits/2"].columns) == ["file", "class", *PROBABILITIES]
    assert outputs["models:/digits/2"]["file"].tolist() == [f"digit{i}.png" for i in range(5)]
    pd.testing.assert_frame_equal(outputs[store.good], outputs["models/best.ckpt"], atol=1e-6)


@pytest.mark.parametrize(
    "model,source,message",
    [
        ("0" * 32, "x.npz", f"run {'0' * 32} is not in tracking store"),
        ("models:/nope@champion", "x.npz", "no registered model 'nope' in"),
        ("models:/digits@best", "x.npz", "model 'digits' has no alias 'best' (its aliases: "),
        ("models:/digits/9", "x.npz", "model 'digits' has no version 9"),
        ("models:/digits/1", "wide.csv", "holds samples shaped 65: the model takes 1x8x8 inputs"),
        ("models:/digits/1", "wrong.npz", "holds samples shaped 2x8x8: the model takes 1x8x8"),
    ],
)
def test_bad_input_is_one_line(store, dlpipe, tmp_path: Path, model, source, message):
    np.savez(tmp_path / "x.npz", x=np.zeros((2, 1, 8, 8), dtype=np.float32))
    np.savez(tmp_path / "wrong.npz", x=np.zeros((2, 2, 8, 8), dtype=np.float32))
    pd.DataFrame(np.zeros((2, 65))).to_csv(tmp_path / "wide.csv", index=False)
    code, out, err = dlpipe("predict", model, str(tmp_path / source))
    (line,) = err.strip().splitlines()
    assert code == 2 and not out
    assert line.startswith("error: ") and message in line, line


def test_predict_to_stdout(store: Store, dlpipe, tmp_path: Path):
    np.savez(tmp_path / "x.npz", x=np.zeros((3, 1, 8, 8), dtype=np.float32))
    code, out, _ = dlpipe("predict", "models:/digits@champion", str(tmp_path / "x.npz"))
    lines = out.splitlines()
    assert code == 0 and lines[0] == ",".join(["class", *PROBABILITIES]) and len(lines) == 4


def test_predict_carries_kept_columns_in_front(store: Store, dlpipe, tmp_path: Path):
    ids = np.array(["u7", "u8", "u9"])
    x = np.zeros((3, 1, 8, 8), dtype=np.float32)
    np.savez(tmp_path / "x.npz", x=x, id=ids, **{"class": ids})
    model, source = "models:/digits@champion", str(tmp_path / "x.npz")
    code, out, _ = dlpipe("predict", model, source, "--keep", "id")
    header, *rows = out.splitlines()
    assert code == 0 and header == ",".join(["id", "class", *PROBABILITIES])
    assert [row.split(",")[0] for row in rows] == ids.tolist()
    code, out, err = dlpipe("predict", model, source, "--keep", "class")
    assert code == 2 and not out
    assert err == "error: --keep class: the predictions have a column of that name: rename it\n"


def test_runs_show_the_data_they_trained_on_and_the_model_they_logged(store: Store):
    client = MlflowClient(store.uri)
    meta = json.loads((store.project / "data" / "prepared" / "meta.json").read_text())
    for run_id in (store.weak, store.good):
        run = client.get_run(run_id)
        (data,) = run.inputs.dataset_inputs
        assert (data.dataset.name, data.dataset.digest) == ("digits", meta["hash"][:12])
        # The runs table of the run's experiment lists the models logged in it, by run.
        (output,) = run.outputs.model_outputs
        model = client.get_logged_model(output.model_id)
        assert (model.experiment_id, model.source_run_id) == (run.info.experiment_id, run_id)


def test_the_command_refuses_an_input_in_one_line(store: Store, tmp_path: Path):
    pd.DataFrame(np.zeros((2, 65))).to_csv(tmp_path / "wide.csv", index=False)
    dlpipe = [str(BIN_DIR / "dlpipe"), "predict", "models:/digits@champion"]
    done = run([*dlpipe, str(tmp_path / "wide.csv")], store.project, check=False)
    assert done.returncode == 2 and not done.stdout
    assert done.stderr.strip() == (
        f"error: input {tmp_path / 'wide.csv'}: holds samples shaped 65: the model takes 1x8x8 "
        "inputs (or rows of 64 values, flattened)"
    )


def user_tables(folder: Path) -> dict[str, list[str]]:
    """Two tables of the user's, a classification and a regression one, written to
    `folder`; the overrides that train a one-epoch MLP on each, by the file's stem."""
    generator = np.random.default_rng(0)
    size = generator.uniform(0, 10, 120)
    frame = pd.DataFrame({"size": size, "colour": generator.choice(["red", "green"], 120)})
    frame.assign(kind=np.where(size > 5, "big", "small")).to_csv(folder / "wine.csv", index=False)
    frame.assign(sugar=size * 2).to_csv(folder / "diabetes.csv", index=False)
    both = ["data=table", "model=mlp", "trainer.max_epochs=1"]
    regression = [
        "data.task=regression",
        "trainer.checkpoint_monitor=val/loss",
        "trainer.checkpoint_mode=min",
    ]
    return {
        "wine": [*both, "data.path=wine.csv", "data.target=kind"],
        "diabetes": [*both, "data.path=diabetes.csv", "data.target=sugar", *regression],
    }


def test_a_bare_evaluate_registers_the_training_under_its_own_data_s_name(store: Store):
    """After trainings on the user's tables, `python pipelines/evaluate.py` registers each
    as a model named after its file, never as a version of the default data's model; an
    override that contradicts the training is refused before anything is written."""
    project, client = store.project, MlflowClient(store.uri)
    digits_champion = champion(client)
    folders = [project / "data" / "prepared", project / "models", project / "reports"]
    with restored(*folders):
        for name, overrides in user_tables(project).items():
            for script in ("prepare", "train"):
                run([sys.executable, f"pipelines/{script}.py", *overrides], project)
            run_id = json.loads((project / "models" / "run.json").read_text())["run_id"]
            reports = file_contents(project / "reports")
            refused = stage(project, "evaluate", "model=cnn")
            assert_one_line_error(refused, "model=cnn contradicts the training", "model.name")
            assert file_contents(project / "reports") == reports
            assert not client.get_run(run_id).data.metrics.keys() & {"test/acc", "test/rmse"}
            assert not client.search_model_versions(f"run_id = '{run_id}'")
            done = stage(project, "evaluate")
            assert done.returncode == 0, done.stderr
            (version,) = client.search_model_versions(f"run_id = '{run_id}'")
            assert (version.name, str(version.version)) == (name, "1")
            assert str(client.get_registered_model(name).aliases["champion"]) == "1"
    assert {model.name for model in client.search_registered_models()} == {
        "digits",
        "wine",
        "diabetes",
    }
    assert champion(client) == digits_champion
