"""Search benchmark: pruned TPE against grid search, 1 against 2 parallel Ray jobs, and
asynchronous trials on Ray Tune against the batch-synchronous sweeper.

    python benchmarks/search.py                 # about 25 minutes on 2 cores
    python benchmarks/search.py --part ray --rounds 3
    python benchmarks/search.py --part async --slots 2 4

Everything runs as a user runs it, in a throw-away copy of the project: Hydra multirun
sweeps through `pipelines/train.py`, read back from MLflow and Optuna's storage.

1. Compute to reach a target: the digits MLP over one discrete space (learning rate x
   dropout x batch size). Grid search trains every point in grid order; TPE with the
   median pruner (`search=bench`, the same space as choices) samples it, on the Hydra
   runner and on Ray Tune (search.runner=ray, one trial at a time). For each: the
   epochs trained, and the wall time, until a job first reaches `--target` best val/acc.
2. Parallel throughput: the same 8 CNN jobs on a local Ray, one at a time with 2 CPUs
   each, one at a time with 1 CPU, and two at a time with 1 CPU (and 1 torch thread)
   each: jobs per minute, from the first job's start to the last one's end (Ray's
   start-up is outside all three). The modes take turns for `--rounds` rounds; each
   mode's best round counts, as the machine's background load only ever slows a round.
3. Asynchronous against batch-synchronous: the same pruned search of the digits CNN
   (`--async-trials` trials, seeded random sampler, threshold pruner: the same trials
   on both runners, about half stopped after 3 of 20 epochs) with N slots, on one Ray
   cluster started for it with N logical CPUs: the Hydra runner on the Ray launcher (N
   trials per batch, each batch waiting for its slowest) and Ray Tune (N trials at once,
   a freed slot refilled at once). Trials per minute, from the first trial's training
   start to the last trial told (Ray's and its workers' start-up left out, as in part
   2), and seconds until a trial first reached `--target`.
"""

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
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
    parser.add_argument("--part", choices=("all", "search", "ray", "async"), default="all")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--slots", type=int, nargs="+", default=[2, 4])
    parser.add_argument("--async-trials", type=int, default=24)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as workdir:
        project = copy_project(Path(workdir))
        write_bench_search(project)
        stage(project, "prepare.py")
        if args.part in ("all", "search"):
            grid = [f"{key}={','.join(values)}" for key, values in SPACE.items()]
            sweep(project, *grid, *COMMON)
            grid_jobs = jobs_of_last_sweep(project)
            tpe = ["search=bench", f"search.n_trials={args.trials}", *COMMON]
            sweep(project, *tpe, "search.study=bench-hydra")
            tpe_jobs = jobs_of_last_sweep(project)
            sweep(project, *tpe, "search.study=bench-tune", "search.runner=ray")
            tune_jobs = jobs_of_last_sweep(project)
            report_search(grid_jobs, tpe_jobs, tune_jobs, args.target)
        if args.part in ("all", "ray"):
            report_ray(project, args.rounds)
        if args.part in ("all", "async"):
            report_async(project, args.slots, args.async_trials, args.target)


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


def report_search(grid_jobs: list, tpe_jobs: list, tune_jobs: list, target: float) -> None:
    print(f"digits MLP, {len(grid_jobs)}-point space, target best val/acc >= {target}")
    print(
        f"{'search':<22} {'jobs':>5} {'epochs to target':>17} {'seconds':>8} "
        f"{'all epochs':>11} {'best val/acc':>13}"
    )
    results = {}
    searches = (
        ("grid", grid_jobs),
        ("TPE + pruning (Hydra)", tpe_jobs),
        ("TPE + pruning (Tune)", tune_jobs),
    )
    for name, jobs in searches:
        epochs, seconds, total = to_target(jobs, target)
        best = max(run.data.metrics.get("best/val/acc", 0) for run, _ in jobs)
        results[name] = epochs
        print(f"{name:<22} {len(jobs):>5} {epochs:>17} {seconds:>8.1f} {total:>11} {best:>13.4f}")
    for name, _ in searches[1:]:
        if min(results["grid"], results[name]) > 0:
            ratio = results[name] / results["grid"]
            print(f"{name} used {ratio:.2f} of grid's epochs to the target (target <= 0.33)")


ASYNC = [
    "search=bench_async",
    "model=cnn",
    "trainer.max_epochs=20",
    "trainer.early_stopping.patience=20",
]


def write_async_search(project: Path) -> None:
    """conf/search/bench_async.yaml: the digits search with a seeded random sampler and a
    threshold pruner (val/acc under 0.965 after 3 epochs). Both runners then train the
    same trials (trial n has the same parameters, and its pruning depends on itself
    alone), about half of them 3 epochs and the rest 20: only the scheduling differs."""
    search = (project / "conf/search/digits.yaml").read_text()
    sampler = search[search.index("    sampler:\n") : search.index("    pruner: ")]
    search = search.replace(sampler, "    sampler:\n      seed: 0\n").replace(
        "  - override /hydra/sweeper: dlpipe_optuna\n",
        "  - override /hydra/sweeper: dlpipe_optuna\n  - override /hydra/sweeper/sampler: random\n",
    )
    pruner = search[search.index("  pruner:\n") : search.index("  # Where the trials run.")]
    threshold = (
        "  pruner:\n    _target_: optuna.pruners.ThresholdPruner\n"
        "    lower: 0.965\n    n_warmup_steps: 2\n"
    )
    (project / "conf/search/bench_async.yaml").write_text(search.replace(pruner, threshold))


def report_async(project: Path, slots: list[int], trials: int, target: float) -> None:
    """Part 3: the batch-synchronous sweeper against Ray Tune, at each slot count."""
    write_async_search(project)
    print(f"\npruned random search, digits CNN, {trials} trials; target val/acc >= {target}")
    print(
        f"{'slots':>5} {'runner':<32} {'trials/min':>10} {'s to target':>12} "
        f"{'pruned':>7} {'epochs':>7}"
    )
    for count in slots:
        with ray_cluster(project, cpus=count) as address:
            env = {"RAY_ADDRESS": address, "RAY_AUTH_MODE": "disabled"}
            runners = {
                "batch-synchronous (Ray launcher)": [
                    "hydra/launcher=dlpipe_ray",
                    "hydra.launcher.ray.remote.num_cpus=1",
                ],
                "asynchronous (Ray Tune)": ["search.runner=ray"],
            }
            rates = {}
            for name, settings in runners.items():
                study = f"async-{count}-{len(rates)}"
                common = [
                    f"search.study={study}",
                    f"search.n_trials={trials}",
                    f"hydra.sweeper.n_jobs={count}",
                ]
                sweep_with(project, env, *ASYNC, *common, *settings)
                rate, seconds, pruned, epochs = study_pace(project, study, target)
                rates[name] = rate
                print(
                    f"{count:>5} {name:<32} {rate:>10.1f} {seconds:>12.1f} {pruned:>7} {epochs:>7}"
                )
        ratio = rates["asynchronous (Ray Tune)"] / rates["batch-synchronous (Ray launcher)"]
        print(f"{count:>5} asynchronous / batch-synchronous trial rate: {ratio:.2f}x (>= 1.3)")


def study_pace(project: Path, study: str, target: float) -> tuple[float, float, int, int]:
    """Trials per minute from the first trial's training start (Ray's and the workers'
    start-up left out) to the last trial told, seconds from that start until a trial
    first reached `target`, how many trials were pruned, and the epochs trained."""
    import optuna

    storage = f"sqlite:///{project / 'optuna.db'}"
    found = optuna.load_study(study_name=study, storage=storage).get_trials(deepcopy=False)
    client = MlflowClient(tracking_uri=f"sqlite:///{project / 'mlflow.db'}")
    runs = client.search_runs(
        [client.get_experiment_by_name("dlpipe").experiment_id],
        f"tags.`optuna.study` = '{study}'",
        max_results=1000,
    )
    trials = [run for run in runs if "optuna.trial" in run.data.tags]
    start = min(run.info.start_time for run in trials) / 1000
    span = max(t.datetime_complete.timestamp() for t in found) - start
    reached = [
        t.datetime_complete.timestamp() - start
        for t in found
        if t.value is not None and t.value >= target
    ]
    pruned = sum(t.state == optuna.trial.TrialState.PRUNED for t in found)
    epochs = sum(len(client.get_metric_history(run.info.run_id, "val/acc")) for run in trials)
    return len(found) / (span / 60), min(reached, default=float("nan")), pruned, epochs


@contextmanager
def ray_cluster(project: Path, cpus: int):
    """A Ray head with `cpus` logical CPUs, both runners' cluster; stopped by its process
    group (never `ray stop`, which would stop every Ray on the machine)."""
    port = free_port()
    folder = Path(tempfile.mkdtemp(prefix="ray-", dir="/tmp"))
    head = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "ray"),
            "start",
            "--head",
            "--block",
            f"--port={port}",
            f"--num-cpus={cpus}",
            "--include-dashboard=false",
            f"--temp-dir={folder}",
        ],
        cwd=project,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        env={**os.environ, "RAY_AUTH_MODE": "disabled"},
    )
    try:
        wait_for_port(port)
        yield f"127.0.0.1:{port}"
    finally:
        os.killpg(head.pid, signal.SIGKILL)
        head.wait()
        shutil.rmtree(folder, ignore_errors=True)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_port(port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            time.sleep(3)  # the head answers before its node has registered
            return
        except OSError:
            time.sleep(0.5)
    raise SystemExit(f"no Ray head on port {port} after {timeout} s")


def sweep_with(project: Path, env: dict, *overrides: str) -> None:
    stage(project, "train.py", "-m", *overrides, env=env)


if __name__ == "__main__":
    main()
