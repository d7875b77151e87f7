"""Quality of the presets: each conf/experiment/ preset trained and evaluated as a user runs it.

    python benchmarks/quality.py                          # every preset, about 15 minutes
    python benchmarks/quality.py --presets digits_lstm    # one

Each preset runs prepare, train and evaluate in a throw-away copy of the project; the
test metric from reports/metrics.json is checked against the preset's bar.
"""

import argparse
import json
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    names = [preset.experiment for preset in PRESETS]
    parser.add_argument("--presets", default=",".join(names), help="comma-separated presets")
    chosen = parser.parse_args().presets.split(",")
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
