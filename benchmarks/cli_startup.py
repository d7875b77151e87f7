"""Start-up benchmark: the `dlpipe` command against MLflow's own `mlflow runs list`.

    python benchmarks/cli_startup.py              # about a minute on 2 cores
    python benchmarks/cli_startup.py --rounds 20

In a throw-away copy of the project, three one-epoch trainings (one evaluated) make a
real sqlite store. Each command then runs `--rounds` times, the commands taking turns so
that the machine's background load falls on all of them alike, and the median wall time
of each (from starting the process to its exit) is printed, with its ratio to the peer
measured in the same rounds: `mlflow runs list` on the same store and experiment.
"""

import argparse
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from project import copy_project, stage

BIN_DIR = Path(sys.executable).parent


def make_store(project: Path) -> None:
    stage(project, "prepare.py")
    for lr in ("0.001", "0.003", "0.01"):
        stage(project, "train.py", "trainer.max_epochs=1", f"optim.lr={lr}")
    stage(project, "evaluate.py")


def commands(project: Path) -> dict[str, list[str]]:
    """The commands timed, by label; the peer last."""
    store = sqlite3.connect(project / "mlflow.db")
    query = "SELECT experiment_id FROM experiments WHERE name = 'dlpipe'"
    experiment = store.execute(query).fetchone()[0]
    runs = [row[0] for row in store.execute("SELECT run_uuid FROM runs LIMIT 2")]
    dlpipe = str(BIN_DIR / "dlpipe")
    return {
        "dlpipe --help": [dlpipe, "--help"],
        "dlpipe runs": [dlpipe, "runs"],
        "dlpipe runs --filter --sort": [
            dlpipe,
            "runs",
            "--filter",
            "params.model.name = 'cnn'",
            "--sort",
            "metrics.best/val/acc DESC",
        ],
        "dlpipe compare A B": [dlpipe, "compare", *runs],
        "mlflow runs list (peer)": [
            str(BIN_DIR / "mlflow"),
            "runs",
            "list",
            "--experiment-id",
            str(experiment),
        ],
    }


def timed(command: list[str], project: Path, env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, cwd=project, env=env, check=True, capture_output=True)
    return time.perf_counter() - start


def measure(project: Path, rounds: int) -> dict[str, list[float]]:
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{project / 'mlflow.db'}"}
    timed_commands = commands(project)
    for command in timed_commands.values():  # warm the file cache and Python's bytecode
        timed(command, project, env)
    times: dict[str, list[float]] = {label: [] for label in timed_commands}
    for _ in range(rounds):
        for label, command in timed_commands.items():
            times[label].append(timed(command, project, env))
    return times


def report(times: dict[str, list[float]]) -> str:
    peer = statistics.median(times["mlflow runs list (peer)"])
    lines = [
        "| command | median | fastest | against the peer |",
        "|---|---|---|---|",
    ]
    for label, values in times.items():
        median = statistics.median(values)
        lines.append(f"| `{label}` | {median:.3f} s | {min(values):.3f} s | {median / peer:.2f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10, help="times each command runs")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        project = copy_project(Path(folder))
        print("making a store: prepare, three trainings, evaluate ...", flush=True)
        make_store(project)
        print(report(measure(project, args.rounds)))


if __name__ == "__main__":
    main()
