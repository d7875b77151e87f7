"""Time-series classification on UCR data sets against the published deep-learning results.

    python benchmarks/quality.py --part ucr                       # every data set and model
    python benchmarks/quality.py --part ucr --ucr-sets GunPoint --ucr-models fcn --ucr-seeds 1

The data sets are the UCR archive's copies that ship inside the sktime package (nothing is
downloaded). Each is written as a user would have it, a CSV per official split (wide: a
label column, then t0..tN; JapaneseVowels, 12 channels of varying length, long), and
trained and evaluated through the pipeline's stages with that split kept: validation is
carved from the training file only, the test file is used for the test only.
"""

import argparse
import csv
import importlib.util
import json
import resource
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from project import copy_project, stage

# Fawaz, Forestier, Weber, Idoumghar and Muller 2019, "Deep learning for time series
# classification: a review", Data Mining and Knowledge Discovery 33: mean (std) test accuracy
# in % over 10 runs on the UCR 2015 archive, from results/results-uea-avg-std.csv of
# github.com/hfawaz/dl-4-tsc (JapaneseVowels: results/results-mts-avg-std.csv).
PUBLISHED_SOURCE = (
    "Fawaz et al. 2019, github.com/hfawaz/dl-4-tsc results/results-uea-avg-std.csv "
    "(JapaneseVowels: results-mts-avg-std.csv)"
)
PUBLISHED = {
    "ArrowHead": {"mlp": (77.8, 1.2), "fcn": (84.3, 1.5), "resnet": (84.5, 1.2)},
    "GunPoint": {"mlp": (92.7, 1.1), "fcn": (100.0, 0.0), "resnet": (99.1, 0.7)},
    "ItalyPowerDemand": {"mlp": (95.4, 0.2), "fcn": (96.1, 0.3), "resnet": (96.3, 0.4)},
    "OSULeaf": {"mlp": (55.7, 1.0), "fcn": (97.7, 0.9), "resnet": (97.9, 0.8)},
    "JapaneseVowels": {"mlp": (97.6, 0.2), "fcn": (99.3, 0.2), "resnet": (99.2, 0.3)},
}
# FCN and ResNet over time must come within this many points of the published mean.
WITHIN = 2.0
BARRED = ("fcn", "resnet")
# The LSTM must beat chance (the share of the test file's most common class) by this much.
ABOVE_CHANCE = 10.0


@dataclass(frozen=True)
class DataSet:
    """A UCR data set: univariate ones are written wide (a row per series), a multivariate
    or variable-length one long (a row per series and step, a column per channel)."""

    name: str
    long: bool = False
    # series: each series z-normalised on its own, as the UCR archive's are; true: each
    # channel standardised over the training series (JapaneseVowels: a channel's level,
    # lost by per-series normalisation, tells the speakers apart: validation accuracy of
    # the fcn 1.0 against 0.91).
    normalise: str = "series"


DATA_SETS = {
    name: DataSet(name) for name in ("ArrowHead", "GunPoint", "ItalyPowerDemand", "OSULeaf")
} | {"JapaneseVowels": DataSet("JapaneseVowels", long=True, normalise="true")}


@dataclass(frozen=True)
class Model:
    """A model of the benchmark (its published figure, if any, under its name in
    PUBLISHED): its dlpipe overrides, its epochs (OSULeaf, 200 series of 427 steps, costs
    as much as the other sets together: it gets its own) and its seeds."""

    name: str
    overrides: tuple[str, ...]
    epochs: int
    osuleaf_epochs: int
    seeds: tuple[int, ...]


MODELS = {
    model.name: model
    for model in (
        Model("mlp", ("model=mlp",), 100, 100, (1,)),
        Model("fcn", ("model=conv1d",), 150, 100, (1, 2)),
        Model("resnet", ("model=resnet1d",), 100, 60, (1, 2)),
        Model("inception", ("model=inception",), 60, 30, (1,)),
        Model("lstm", ("model=lstm", "trainer.gradient_clip_val=1.0"), 60, 30, (1,)),
    )
}
# Every run: Adam at Fawaz et al.'s 0.001, annealed along a cosine to 0 by the last epoch
# (a fixed budget of epochs instead of their 1500-2000 with a plateau schedule); all the
# epochs trained (no early stopping); validation chooses the epoch with the lowest loss, and
# the model is then refit on the whole training file for that many epochs (trainer.refit):
# a validation split of 7 to 40 series is enough to choose an epoch, not to be left out of
# training. Loss, not accuracy: on 14 series accuracy moves in steps of 7 points, and a lucky
# 1.0 at the second epoch (ItalyPowerDemand, fcn, seed 2) chose an untrained model (78.8%
# against 95.4% chosen by loss).
COMMON = (
    "optim=adam",
    "optim.lr=0.001",
    "schedule=cosine",
    "trainer.early_stopping=null",
    "trainer.checkpoint_monitor=val/loss",
    "trainer.checkpoint_mode=min",
    "trainer.refit=true",
    "registry.name=null",
)
# The share of each training file carved off for validation.
VAL = 0.2


def ucr_folder() -> Path:
    """The folder of data sets inside the installed sktime package, found without
    importing it (importing sktime takes seconds and imports much else)."""
    spec = importlib.util.find_spec("sktime")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("error: sktime is not installed: pip install sktime (it ships the data)")
    return Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data"


def read_ts(path: Path) -> tuple[list[str], list[list[list[float]]]]:
    """The labels and series of a .ts file (sktime's format): header lines start with '@'
    (or '#': comments), then one series a line, its channels separated by ':', each a list
    of comma-separated values, the class label last. Series: [channel][step]."""
    labels, series = [], []
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("@", "#")):
            continue
        *channels, label = line.split(":")
        labels.append(label.strip())
        series.append([[float(v) for v in channel.split(",")] for channel in channels])
    return labels, series


def write_wide_csv(path: Path, labels: list[str], series: list[list[list[float]]]) -> None:
    """One row per univariate series: its label, then its values as columns t0..tN."""
    steps = max(len(s[0]) for s in series)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["label", *(f"t{i}" for i in range(steps))])
        for label, values in zip(labels, series, strict=True):
            writer.writerow([label, *values[0]])


def write_long_csv(path: Path, labels: list[str], series: list[list[list[float]]]) -> None:
    """One row per series and time step (multivariate, any length): id, time, label, then
    a column per channel c0..cK."""
    width = len(series[0])
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "time", "label", *(f"c{i}" for i in range(width))])
        for number, (label, channels) in enumerate(zip(labels, series, strict=True)):
            for step, values in enumerate(zip(*channels, strict=True)):
                writer.writerow([number, step, label, *values])


def data_overrides(data_set: DataSet, folder: Path) -> tuple[str, ...]:
    """Write the official TRAIN and TEST files of `data_set` into `folder` as a user would
    have them, and the data settings that read them with that split kept."""
    paths = {}
    for split in ("TRAIN", "TEST"):
        labels, series = read_ts(ucr_folder() / data_set.name / f"{data_set.name}_{split}.ts")
        paths[split] = folder / f"{data_set.name}_{split}.csv"
        (write_long_csv if data_set.long else write_wide_csv)(paths[split], labels, series)
    common = (
        f"data.path={paths['TRAIN']}",
        f"data.test_path={paths['TEST']}",
        "data.split.test=0",
        f"data.split.val={VAL}",
        "data.target=label",
        f"data.normalise={data_set.normalise}",
    )
    if not data_set.long:
        return ("data=series_rows", *common)
    channels = len(series[0])
    values = ",".join(f"c{i}" for i in range(channels))
    return ("data=series_long", *common, f"data.values=[{values}]", "data.ragged=pad")


def chance(data_set: DataSet) -> float:
    """Test accuracy in % of always answering the test file's most common class."""
    labels, _ = read_ts(ucr_folder() / data_set.name / f"{data_set.name}_TEST.ts")
    return 100 * max(labels.count(label) for label in set(labels)) / len(labels)


def epochs(model: Model, data_set: DataSet) -> int:
    return model.osuleaf_epochs if data_set.name == "OSULeaf" else model.epochs


def test_accuracy(project: Path, overrides: tuple[str, ...]) -> float:
    """Train and evaluate with `overrides` (the data prepared already); test accuracy in %."""
    stage(project, "train.py", *overrides)
    stage(project, "evaluate.py", *overrides)
    return 100 * json.loads((project / "reports/metrics.json").read_text())["test/acc"]


@dataclass(frozen=True)
class Result:
    data_set: str
    model: str
    accuracies: list[float]
    seeds: tuple[int, ...]
    epochs: int
    seconds: float
    cpu_seconds: float
    chance: float

    def row(self) -> str:
        """One markdown row: dlpipe's mean (std) over the seeds beside the published one."""
        mean = statistics.mean(self.accuracies)
        spread = f" ({statistics.stdev(self.accuracies):.1f})" if len(self.accuracies) > 1 else ""
        published = PUBLISHED[self.data_set].get(self.model)
        against, verdict = "- | -", "-"
        if self.model == "lstm":
            above = mean >= self.chance + ABOVE_CHANCE
            verdict = f"{'yes' if above else 'NO'} (chance {self.chance:.1f})"
        if published is not None:
            gap = mean - published[0]
            against = f"{published[0]:.1f} ({published[1]:.1f}) | {gap:+.1f}"
            if self.model in BARRED:
                verdict = "yes" if gap >= -WITHIN else "NO"
        seeds = ",".join(map(str, self.seeds))
        return (
            f"| {self.data_set} | {self.model} | {mean:.1f}{spread} | {against} | "
            f"{verdict} | {seeds} | {self.epochs} | {self.seconds:.0f} s | "
            f"{self.cpu_seconds:.0f} s |"
        )


HEADER = (
    "| data set | model | dlpipe test acc % mean (std) | published mean (std) | gap | "
    "bar | seeds | epochs | wall | cpu |\n|---|---|---|---|---|---|---|---|---|---|"
)


def children_cpu() -> float:
    """CPU seconds the stages run so far have used: unlike their wall time, barely moved
    by other work sharing the machine."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_ucr(project: Path, sets: list[str], models: list[str], seeds: tuple[int, ...] | None):
    """Each data set prepared once with its official split, then every model trained and
    tested on it for each of its seeds (`seeds` replaces every model's own)."""
    print(f"published: {PUBLISHED_SOURCE}\n{HEADER}", flush=True)
    for name in sets:
        data_set = DATA_SETS[name]
        data = data_overrides(data_set, project)
        stage(project, "prepare.py", *data)
        for model in (MODELS[m] for m in models):
            start, cpu, used = time.perf_counter(), children_cpu(), seeds or model.seeds
            accuracies = [
                test_accuracy(
                    project,
                    (
                        *data,
                        *COMMON,
                        *model.overrides,
                        f"trainer.max_epochs={epochs(model, data_set)}",
                        f"seed={seed}",
                    ),
                )
                for seed in used
            ]
            seconds, cpu = time.perf_counter() - start, children_cpu() - cpu
            result = Result(
                name,
                model.name,
                accuracies,
                used,
                epochs(model, data_set),
                seconds,
                cpu,
                chance(data_set),
            )
            print(result.row(), flush=True)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ucr-sets", default=",".join(DATA_SETS), help="comma-separated")
    parser.add_argument("--ucr-models", default=",".join(MODELS), help="comma-separated")
    parser.add_argument(
        "--ucr-seeds", default=None, help="comma-separated seeds for every model (default: its own)"
    )


def main(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """The UCR part of benchmarks/quality.py, with its arguments checked."""
    sets, models = args.ucr_sets.split(","), args.ucr_models.split(",")
    for chosen, known, what in ((sets, DATA_SETS, "data set"), (models, MODELS, "model")):
        unknown = sorted(set(chosen) - set(known))
        if unknown:
            parser.error(f"unknown {what} {unknown[0]}: choose from {', '.join(known)}")
    seeds = tuple(int(s) for s in args.ucr_seeds.split(",")) if args.ucr_seeds else None
    with tempfile.TemporaryDirectory() as workdir:
        run_ucr(copy_project(Path(workdir)), sets, models, seeds)


if __name__ == "__main__":
    cli = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(cli)
    main(cli, cli.parse_args())
