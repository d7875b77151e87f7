"""Search benchmark: pruned TPE against grid search, and 1 against 2 parallel Ray jobs.

    python benchmarks/search.py                 # about 8 minutes on 2 cores
    python benchmarks/search.py --part ray --rounds 3

Everything runs as a user runs it, in a throw-away copy of the project: Hydra multirun
sweeps through `pipelines/train.py`, read back from MLflow and Optuna's storage.

1. Compute to reach a target: the digits MLP over one discrete space (learning rate x
   dropout x batch size). Grid search trains every point in grid order; TPE with the
   median pruner (`search=bench`, the same space as choices) samples it. For each: the
   epochs trained, and the wall time, until a job first reaches `--target` best val/acc.
2. Parallel throughput: the same 8 CNN jobs on a local Ray, one at a time with 2 CPUs
   each, one at a time with 1 CPU, and two at a time with 1 CPU (and 1 torch thread)
   each: jobs per minute, from the first job's start to the last one's end (Ray's
   start-up is outside all three). The modes take turns for `--rounds` rounds; each
   mode's best round counts, as the machine's background load only ever slows a round.
"""

import argparse
import tempfile
from pathlib import Path

from mlflow import MlflowClient
from project import copy_project, stage

SPACE = {
    "optim.lr": ["0.0003", "0.001", "0.003", "0.01", "0.03"],
    "model.dropout": ["0.0", "0.25", "0.5"],
    "data.batch_size": ["32", "64", "128"],
}
COMMON = ["model=mlp", "trainer.max_epochs=12", "trainer.early_stopping.patience=12"]


def write_bench_search(project: Path) -> None:
    """conf/search/bench.yaml: the digits search over SPACE, as choices."""
    search = (project / "conf/search/digits.yaml").read_text()
    params = "\n".join(f"      {key}: choice({', '.join(values)})" for key, values in SPACE.items())
    head = search.split("    params:\n")[0]
    (project / "conf/search/bench.yaml").write_text(f"{head}    params:\n{params}\n")


def sweep(project: Path, *overrides: str) -> None:
    stage(project, "train.py", "-m", *overrides)


def jobs_of_last_sweep(project: Path) -> list:
    """The child runs of the newest sweep, oldest first."""
    client = MlflowClient(tracking_uri=f"sqlite:///{project / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("dlpipe").experiment_id
    parent = client.search_runs(
        [experiment], "tags.`dlpipe.sweep_dir` != ''", order_by=["attributes.start_time DESC"]
    )[0]
    children = client.search_runs(
        [experiment],
        f"tags.mlflow.parentRunId = '{parent.info.run_id}'",
        order_by=["attributes.start_time ASC"],
        max_results=1000,
    )
    return [(run, len(client.get_metric_history(run.info.run_id, "val/acc"))) for run in children]


def to_target(jobs: list, target: float) -> tuple[int, float, int]:
    """Epochs and seconds until a job first reached `target`, and all epochs trained."""
    start, epochs = jobs[0][0].info.start_time, 0
    total = sum(count for _, count in jobs)
    for run, count in jobs:
        epochs += count
        if run.data.metrics.get("best/val/acc", 0) >= target:
            return epochs, (run.info.end_time - start) / 1000, total
    return -1, float("nan"), total


def jobs_per_minute(jobs: list) -> float:
    first = min(run.info.start_time for run, _ in jobs)
    last = max(run.info.end_time for run, _ in jobs)
    return len(jobs) / ((last - first) / 60000)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", type=float, default=0.98)
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--part", choices=("all", "search", "ray"), default="all")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as workdir:
        project = copy_project(Path(workdir))
        write_bench_search(project)
        stage(project, "prepare.py")
        if args.part in ("all", "search"):
            grid = [f"{key}={','.join(values)}" for key, values in SPACE.items()]
            sweep(project, *grid, *COMMON)
            grid_jobs = jobs_of_last_sweep(project)
            sweep(project, "search=bench", f"search.n_trials={args.trials}", *COMMON)
            tpe_jobs = jobs_of_last_sweep(project)
            report_search(grid_jobs, tpe_jobs, args.target)
        if args.part in ("all", "ray"):
            report_ray(project, args.rounds)


def report_ray(project: Path, rounds: int) -> None:
    eight = [
        "model=cnn",
        "optim.lr=0.001,0.003,0.01,0.03",
        "data.batch_size=32,64",
        "trainer.max_epochs=12",
        "trainer.early_stopping.patience=12",
    ]
    ray = ["hydra/launcher=dlpipe_ray"]
    modes = {
        "1 at a time, 2 CPUs each": ["hydra.launcher.ray.remote.num_cpus=2"],
        "1 at a time, 1 CPU (1 idle)": ["+hydra.launcher.ray.init.num_cpus=1"],
        "2 at a time, 1 CPU each": ["hydra.launcher.ray.remote.num_cpus=1"],
    }
    print(f"\nRay, 8 jobs of {' '.join(eight[:3])}, best of {rounds} rounds")
    measured = {name: [] for name in modes}
    for _ in range(rounds):
        for name, settings in modes.items():
            sweep(project, *ray, *settings, *eight)
            measured[name].append(jobs_per_minute(jobs_of_last_sweep(project)))
    rates = {name: max(values) for name, values in measured.items()}
    for name, values in measured.items():
        rounds_text = ", ".join(f"{value:.1f}" for value in values)
        print(f"{name:<28} {rates[name]:6.1f} jobs/min  (rounds: {rounds_text})")
    two = rates["2 at a time, 1 CPU each"]
    print(
        f"2 at a time: {two / rates['1 at a time, 2 CPUs each']:.2f}x one job with both cores, "
        f"{two / rates['1 at a time, 1 CPU (1 idle)']:.2f}x one single-core job (target >= 1.7)"
    )


def report_search(grid_jobs: list, tpe_jobs: list, target: float) -> None:
    print(f"digits MLP, {len(grid_jobs)}-point space, target best val/acc >= {target}")
    print(
        f"{'search':<14} {'jobs':>5} {'epochs to target':>17} {'seconds':>8} "
        f"{'all epochs':>11} {'best val/acc':>13}"
    )
    results = {}
    for name, jobs in (("grid", grid_jobs), ("TPE + pruning", tpe_jobs)):
        epochs, seconds, total = to_target(jobs, target)
        best = max(run.data.metrics.get("best/val/acc", 0) for run, _ in jobs)
        results[name] = epochs
        print(f"{name:<14} {len(jobs):>5} {epochs:>17} {seconds:>8.1f} {total:>11} {best:>13.4f}")
    if min(results.values()) > 0:
        ratio = results["TPE + pruning"] / results["grid"]
        print(f"TPE + pruning used {ratio:.2f} of grid's epochs to the target (target <= 0.33)")


if __name__ == "__main__":
    main()
