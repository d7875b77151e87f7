"""Ray Train scaling: the digits CNN on 1 and 2 Ray Train workers, against an in-process run.

    python benchmarks/distributed.py            # about 4 minutes on 2 cores

Each training runs as a user runs it (`pipelines/train.py cluster=ray ...`) in a
throw-away copy of the project, on a local Ray cluster started once for all of them.
Where the time goes, from the run's MLflow record:
- start-up: from the command's start to the first epoch's metrics, less that epoch;
- epoch: the median time between consecutive epochs' metrics (training and validation);
- step: epoch time over the steps each worker takes per epoch.
Communication is what a 2-worker step costs beyond a 1-worker step: the gradient
all-reduce and the workers' synchronisation (each worker has one core either way).
"""

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mlflow import MlflowClient
from project import copy_project, stage

EPOCHS = 8
COMMON = [f"trainer.max_epochs={EPOCHS}", f"trainer.early_stopping.patience={EPOCHS}"]
MODES = {
    "in-process, 1 thread": ["cluster=local"],
    "Ray Train, 1 worker": ["cluster=ray", "cluster.num_workers=1"],
    "Ray Train, 2 workers": ["cluster=ray", "cluster.num_workers=2"],
}


def train(project: Path, address: str, overrides: list[str]) -> tuple[float, str]:
    """Wall seconds of one training, and its MLflow run id."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "pipelines/train.py", *COMMON, *overrides]
    if "cluster=ray" in overrides:
        command.append(f"cluster.address={address}")
    started = time.perf_counter()
    done = subprocess.run(command, cwd=project, env=env, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stdout}\n{done.stderr}")
    seconds = time.perf_counter() - started
    return seconds, json.loads((project / "models/run.json").read_text())["run_id"]


def epoch_times(client: MlflowClient, run_id: str) -> list[float]:
    """Seconds between consecutive epochs' last metric (train/loss, logged last)."""
    stamps = sorted(m.timestamp for m in client.get_metric_history(run_id, "train/loss"))
    return [(later - earlier) / 1000 for earlier, later in itertools.pairwise(stamps)]


def start_cluster(port: int) -> subprocess.Popen:
    ray = Path(sys.executable).parent / "ray"
    command = [str(ray), "start", "--head", "--block", f"--port={port}", "--num-cpus=2"]
    head = subprocess.Popen(
        [*command, "--include-dashboard=false", "--node-ip-address=127.0.0.1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(15)
    return head


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=36379, help="the local Ray head's port")
    port = parser.parse_args().port
    head = start_cluster(port)
    try:
        with tempfile.TemporaryDirectory() as workdir:
            project = copy_project(Path(workdir))
            stage(project, "prepare.py")
            client = MlflowClient(f"sqlite:///{project / 'mlflow.db'}")
            print("| mode | wall | start-up | epoch | steps/epoch per worker | step |")
            print("|---|---|---|---|---|---|")
            for mode, overrides in MODES.items():
                wall, run_id = train(project, f"127.0.0.1:{port}", overrides)
                epochs = epoch_times(client, run_id)
                epoch = statistics.median(epochs)
                workers = 2 if "cluster.num_workers=2" in overrides else 1
                steps = -(
                    -json.loads((project / "data/prepared/meta.json").read_text())["sizes"]["train"]
                    // (32 * workers)
                )
                startup = wall - sum(epochs) - epoch
                print(
                    f"| {mode} | {wall:.1f} s | {startup:.1f} s | {epoch:.2f} s | {steps} | "
                    f"{1000 * epoch / steps:.1f} ms |",
                    flush=True,
                )
    finally:
        head.terminate()
        head.wait()


if __name__ == "__main__":
    main()
