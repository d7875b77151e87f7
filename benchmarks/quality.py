"""Quality of the presets: each conf/experiment/ preset trained and evaluated as a user runs it.

    python benchmarks/quality.py                          # every preset, about 10 minutes
    python benchmarks/quality.py --presets digits_lstm    # one

Each preset runs prepare, train and evaluate in a throw-away copy of the project; the
test metric from reports/metrics.json is checked against the preset's bar.
"""

import argparse
import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from project import copy_project, stage


@dataclass(frozen=True)
class Preset:
    experiment: str
    model: str
    data: str
    metric: str
    bar: float
    higher_is_better: bool = True

    def reached(self, value: float) -> bool:
        return value >= self.bar if self.higher_is_better else value <= self.bar


PRESETS = [
    Preset("digits_mlp", "mlp", "digits", "test/acc", 0.97),
    Preset("digits_cnn", "cnn", "digits", "test/acc", 0.985),
    Preset("digits_resnet", "resnet", "digits", "test/acc", 0.985),
    Preset("digits_transformer", "transformer", "digits", "test/acc", 0.96),
    Preset("digits_lstm", "lstm", "digits", "test/acc", 0.95),
]


def run_preset(project: Path, preset: Preset) -> tuple[float, float]:
    """The preset's test metric and the seconds its stages took."""
    start = time.perf_counter()
    stage(project, "prepare.py", f"experiment={preset.experiment}")
    stage(project, "train.py", f"experiment={preset.experiment}")
    stage(project, "evaluate.py", f"experiment={preset.experiment}")
    metrics = json.loads((project / "reports/metrics.json").read_text())
    return metrics[preset.metric], time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    names = [preset.experiment for preset in PRESETS]
    parser.add_argument("--presets", default=",".join(names), help="comma-separated presets")
    chosen = parser.parse_args().presets.split(",")
    unknown = sorted(set(chosen) - set(names))
    if unknown:
        parser.error(f"unknown preset {unknown[0]}: choose from {', '.join(names)}")
    print(f"| {'model':<12}| {'data':<8}| {'metric':<9}| {'bar':<9}| reached | time |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as workdir:
        project = copy_project(Path(workdir))
        for preset in (p for p in PRESETS if p.experiment in chosen):
            value, seconds = run_preset(project, preset)
            bar = f"{'>=' if preset.higher_is_better else '<='} {preset.bar}"
            verdict = f"{value:.4f} {'yes' if preset.reached(value) else 'NO'}"
            print(
                f"| {preset.model:<12}| {preset.data:<8}| {preset.metric:<9}| {bar:<9}| "
                f"{verdict} | {seconds:.0f} s |",
                flush=True,
            )


if __name__ == "__main__":
    main()
