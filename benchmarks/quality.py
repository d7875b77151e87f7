"""Quality of the presets: each conf/experiment/ preset trained and evaluated as a user runs it.

    python benchmarks/quality.py                          # every preset, about 15 minutes
    python benchmarks/quality.py --presets digits_lstm    # one
    python benchmarks/quality.py --part tables            # small tables against sklearn
    python benchmarks/quality.py --part ucr               # UCR series against Fawaz et al.
    python benchmarks/quality.py --part text              # text against n-grams and TF-IDF

Each preset runs prepare, train and evaluate in a throw-away copy of the project; the
test metric from reports/metrics.json is checked against the preset's bar.
The tables part writes public tables that ship with scikit-learn as CSV files, runs each
through the user-table path of the README for several seeds, and fits a standardised
linear model (LogisticRegression, or Ridge for a regression table) on the same training
rows, scored on the same test rows.
"""

import argparse
import json
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import text
import ucr
from project import copy_project, stage


def run_stages(project: Path, *overrides: str) -> dict:
    """Prepare, train and evaluate with `overrides`; the test metrics."""
    for script in ("prepare.py", "train.py", "evaluate.py"):
        stage(project, script, *overrides)
    return json.loads((project / "reports/metrics.json").read_text())


def test_metric(project: Path, preset: "Preset") -> float:
    return run_stages(project, f"experiment={preset.experiment}")[preset.metric]


def linear_fit_error(project: Path, preset: "Preset") -> float:
    """How far the fitted neuron's weight and bias are from the generating 3 and 1."""
    import torch

    run_stages(project, f"experiment={preset.experiment}")
    weights = torch.load(project / "models/best.ckpt", weights_only=True)["state_dict"]
    w, b = weights["model.linear.weight"].item(), weights["model.linear.bias"].item()
    return max(abs(w - 3), abs(b - 1))


def truth_table_accuracy(project: Path, preset: "Preset") -> float:
    """The trained perceptron's accuracy on the 8 rows of the weather truth table."""
    import torch

    from dlpipe.data.synthetic import weather
    from dlpipe.record import RunRecord
    from dlpipe.tasks.metrics import predicted_classes
    from dlpipe.training.checkpoints import load_model

    run_stages(project, f"experiment={preset.experiment}")
    record = RunRecord.read(project / "models/run.json")
    model = load_model(record.serving(), project / record.best_checkpoint, "train it again")
    table = weather(copies=1)
    with torch.inference_mode():
        scores = model(torch.from_numpy(table.x))
    return (predicted_classes(scores).numpy() == table.y).mean().item()


def transfer_gain(project: Path, preset: "Preset", seeds: tuple[int, ...] = (1, 2, 3)) -> float:
    """Mean test accuracy fine-tuned from digits_pretrain minus from scratch, over `seeds`."""
    from dlpipe.files import read_json

    stage(project, "prepare.py", "experiment=digits_pretrain")
    stage(project, "train.py", "experiment=digits_pretrain")
    source = read_json(project / "models/run.json")["run_id"]
    results = {}
    for name, start in (("fine-tuned", source), ("scratch", "null")):
        results[name] = [
            run_stages(
                project, f"experiment={preset.experiment}", f"transfer.source={start}", f"seed={s}"
            )["test/acc"]
            for s in seeds
        ]
    for name, values in results.items():
        print(f"  {name}: test/acc {', '.join(f'{v:.4f}' for v in values)}", flush=True)
    return (sum(results["fine-tuned"]) - sum(results["scratch"])) / len(seeds)


def gan_judged(project: Path, preset: "Preset") -> float:
    """The GAN's samples as a digits CNN labels them: its mean highest probability, or 0
    when the samples cover fewer than 8 of the 10 classes."""
    from dlpipe.files import read_json

    run_stages(project, "experiment=digits_cnn")
    classifier = read_json(project / "models/run.json")["run_id"]
    metrics = run_stages(
        project, f"experiment={preset.experiment}", f"evaluate.classifier={classifier}"
    )
    covered = metrics["test/classes_covered"]
    print(f"  classes covered: {covered:.0f} of 10", flush=True)
    return metrics["test/confidence"] if covered >= 8 else 0.0


def located_digit_accuracy(project: Path, preset: "Preset") -> float:
    """The multi-task preset's digit accuracy, or 0 when its position error is above half a
    pixel: both heads must reach their bar."""
    metrics = run_stages(project, f"experiment={preset.experiment}")
    error = metrics["test/position/mae"]
    print(f"  test/position/mae: {error:.3f} px", flush=True)
    return metrics["test/digit/acc"] if error <= 0.5 else 0.0


@dataclass(frozen=True)
class Preset:
    experiment: str
    model: str
    data: str
    metric: str  # a key of reports/metrics.json, or what `measure` returns
    bar: float
    higher_is_better: bool = True
    measure: Callable[[Path, "Preset"], float] = test_metric

    def reached(self, value: float) -> bool:
        if self.higher_is_better:
            return value >= self.bar
        return value <= self.bar


PRESETS = [
    Preset("digits_mlp", "mlp", "digits", "test/acc", 0.97),
    Preset("digits_cnn", "cnn", "digits", "test/acc", 0.985),
    Preset("digits_resnet", "resnet", "digits", "test/acc", 0.985),
    Preset("digits_transformer", "transformer", "digits", "test/acc", 0.96),
    Preset("digits_lstm", "lstm", "digits", "test/acc", 0.95),
    Preset("digits_autoencoder", "autoencoder", "digits", "test/mse_vs_pca", 1.0, False),
    Preset("digits_gan", "gan", "digits", "confidence, >= 8 classes", 0.8, True, gan_judged),
    Preset("digits_finetune", "cnn", "digits", "acc gain over scratch", 0.005, True, transfer_gain),
    Preset(
        "located_digits_cnn",
        "cnn, 2 heads",
        "located",
        "digit acc, position mae <= 0.5",
        0.97,
        True,
        located_digit_accuracy,
    ),
    Preset(
        "linear_perceptron",
        "perceptron",
        "linear",
        "max(abs(w-3), abs(b-1))",
        0.05,
        False,
        linear_fit_error,
    ),
    Preset(
        "weather_perceptron",
        "perceptron",
        "weather",
        "truth table acc",
        1.0,
        True,
        truth_table_accuracy,
    ),
    Preset("sunspots_lstm", "lstm", "sunspots", "test/skill", 0.15),
    Preset("sunspots_gru", "gru", "sunspots", "test/skill", 0.15),
    Preset("sunspots_transformer", "transformer", "sunspots", "test/skill", 0.15),
    Preset("waves_gru", "gru", "waves", "test/acc", 0.9),
]


def run_preset(project: Path, preset: Preset) -> tuple[float, float]:
    """The preset's measured quality and the seconds it took."""
    start = time.perf_counter()
    value = preset.measure(project, preset)
    return value, time.perf_counter() - start


@dataclass(frozen=True)
class Table:
    """A public table of scikit-learn's (`sklearn.datasets.load_<name>`), run as a user's."""

    name: str
    task: str  # classification or regression


TABLES = [
    Table("wine", "classification"),
    Table("breast_cancer", "classification"),
    Table("iris", "classification"),
    Table("diabetes", "regression"),
]
# Each seed is both the split's (data.split.seed) and the training's (seed).
TABLE_SEEDS = (0, 1, 2, 3, 4)
# Within this much of the linear model: accuracy points, or a fraction of its RMSE.
TABLE_ACC_MARGIN = 0.01
TABLE_RMSE_MARGIN = 0.02


def write_table(table: Table, folder: Path) -> Path:
    """The table as `<name>.csv` in `folder`, its target column named `label`."""
    from sklearn import datasets

    frame = getattr(datasets, f"load_{table.name}")(as_frame=True).frame
    path = folder / f"{table.name}.csv"
    frame.rename(columns={"target": "label"}).to_csv(path, index=False)
    return path


def table_overrides(path: Path, table: Table, seed: int) -> list[str]:
    """The data settings of the README's table recipe, for this table and seed."""
    return [
        "data=table",
        f"data.path={path}",
        "data.target=label",
        f"data.task={table.task}",
        f"data.split.seed={seed}",
        f"seed={seed}",
    ]


def dlpipe_table_score(project: Path, path: Path, table: Table, seed: int) -> float:
    """Test accuracy (or RMSE) of the README's table recipe: prepare, train, evaluate."""
    data = table_overrides(path, table, seed)
    stage(project, "prepare.py", *data)
    stage(project, "train.py", *data, "experiment=table_mlp")
    stage(project, "evaluate.py")
    metrics = json.loads((project / "reports/metrics.json").read_text())
    return metrics["test/acc" if table.task == "classification" else "test/rmse"]


def linear_table_score(project: Path, table: Table) -> float:
    """A standardised LogisticRegression (Ridge for regression), fitted on the prepared
    train and validation rows (the rows dlpipe learnt from), scored on the test rows."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.metrics import accuracy_score, root_mean_squared_error
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    prepared = project / "data/prepared"
    splits = {name: np.load(prepared / f"{name}.npz") for name in ("train", "val", "test")}
    x_fit = np.concatenate([splits["train"]["x"], splits["val"]["x"]])
    y_fit = np.concatenate([splits["train"]["y"], splits["val"]["y"]])
    x_test, y_test = splits["test"]["x"], splits["test"]["y"]
    if table.task == "classification":
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=10_000))
        return float(accuracy_score(y_test, model.fit(x_fit, y_fit).predict(x_test)))
    # Prepared regression targets are standardised: back to the target's own units.
    stats = json.loads((prepared / "meta.json").read_text())["stats"]
    mean, std = np.ravel(stats["y_mean"])[0], np.ravel(stats["y_std"])[0]
    model = make_pipeline(StandardScaler(), Ridge())
    predicted = model.fit(x_fit, y_fit.ravel()).predict(x_test) * std + mean
    return float(root_mean_squared_error(y_test.ravel() * std + mean, predicted))


def table_row(table: Table, ours: list[float], linear: list[float]) -> str:
    """One markdown row: means ± standard deviations over the seeds, difference, verdict."""
    import numpy as np

    ours_mean, linear_mean = float(np.mean(ours)), float(np.mean(linear))
    if table.task == "classification":
        scale, unit, metric = 100, " pts", "test acc (%)"
        reached = ours_mean >= linear_mean - TABLE_ACC_MARGIN
        baseline = "LogisticRegression"
    else:
        scale, unit, metric = 1, f" ({ours_mean / linear_mean - 1:+.1%})", "test RMSE"
        reached = ours_mean <= linear_mean * (1 + TABLE_RMSE_MARGIN)
        baseline = "Ridge"
    shown = [f"{scale * np.mean(v):.2f} ± {scale * np.std(v):.2f}" for v in (ours, linear)]
    difference = f"{scale * (ours_mean - linear_mean):+.2f}{unit}"
    return (
        f"| {table.name} | {metric} | {shown[0]} | {baseline} {shown[1]} | {difference} | "
        f"{'yes' if reached else 'NO'} |"
    )


def run_tables(project: Path, chosen: list[str]) -> None:
    """The tables part: dlpipe's table recipe against a linear model, same splits."""
    print(
        f"seeds {', '.join(map(str, TABLE_SEEDS))} (data.split.seed and seed); bar: accuracy "
        f"within {TABLE_ACC_MARGIN * 100:.0f} point, RMSE within {TABLE_RMSE_MARGIN:.0%}",
        flush=True,
    )
    print("| data | metric | dlpipe mlp | linear model | difference | reached |")
    print("|---|---|---|---|---|---|")
    for table in (t for t in TABLES if t.name in chosen):
        path = write_table(table, project)
        ours, linear = [], []
        for seed in TABLE_SEEDS:
            ours.append(dlpipe_table_score(project, path, table, seed))
            linear.append(linear_table_score(project, table))
        print(table_row(table, ours, linear), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("presets", "tables", "ucr", "text"), default="presets")
    names = [preset.experiment for preset in PRESETS]
    parser.add_argument("--presets", default=",".join(names), help="comma-separated presets")
    tables = [table.name for table in TABLES]
    parser.add_argument("--tables", default=",".join(tables), help="comma-separated tables")
    ucr.add_arguments(parser)
    args = parser.parse_args()
    if args.part == "ucr":
        ucr.main(parser, args)
        return
    if args.part == "text":
        with tempfile.TemporaryDirectory() as workdir:
            text.run_text(copy_project(Path(workdir)))
        return
    if args.part == "tables":
        unknown = sorted(set(args.tables.split(",")) - set(tables))
        if unknown:
            parser.error(f"unknown table {unknown[0]}: choose from {', '.join(tables)}")
        with tempfile.TemporaryDirectory() as workdir:
            run_tables(copy_project(Path(workdir)), args.tables.split(","))
        return
    chosen = args.presets.split(",")
    unknown = sorted(set(chosen) - set(names))
    if unknown:
        parser.error(f"unknown preset {unknown[0]}: choose from {', '.join(names)}")
    print(f"| {'model':<12}| {'data':<9}| {'metric':<24}| {'bar':<9}| reached | time |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as workdir:
        project = copy_project(Path(workdir))
        for preset in (p for p in PRESETS if p.experiment in chosen):
            value, seconds = run_preset(project, preset)
            bar = f"{'>=' if preset.higher_is_better else '<='} {preset.bar}"
            verdict = f"{value:.4f} {'yes' if preset.reached(value) else 'NO'}"
            print(
                f"| {preset.model:<12}| {preset.data:<9}| {preset.metric:<24}| {bar:<9}| "
                f"{verdict} | {seconds:.0f} s |",
                flush=True,
            )


if __name__ == "__main__":
    main()
