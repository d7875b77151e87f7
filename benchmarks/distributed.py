"""Ray Train scaling: the digits CNN on 1 and 2 Ray Train workers, against an in-process run.

    python benchmarks/distributed.py            # about 5 minutes on 2 cores

Each training runs as a user runs it (`pipelines/train.py cluster=ray ...`) in a
throw-away copy of the project, on a local Ray cluster started once for all of them.
Where the time goes, from the runs' MLflow records:
- start-up: from the command's start to the first epoch's metrics, less one epoch;
- epoch: the median time between consecutive epochs' metrics. Each mode trains at batch
  sizes 16 and 32; the two step counts split an epoch into a part fixed per epoch
  (validation, checkpoint, reporting to Ray) and a part per training step.
Communication is what a 2-worker step costs beyond a 1-worker step: the gradient
all-reduce and the workers' synchronisation (each worker has one core either way). The
all-reduce alone is timed last, between two plain processes.
"""

import argparse
import itertools
import json
import math
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
BATCHES = (16, 32)
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


def _all_reduce_worker(rank: int, port: int, numel: int, rounds: int, out) -> None:
    import torch
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    gradient = torch.ones(numel)
    times = []
    for _ in range(rounds):
        dist.barrier()
        started = time.perf_counter()
        dist.all_reduce(gradient)
        times.append(time.perf_counter() - started)
    if rank == 0:
        out.put(statistics.median(times))
    dist.destroy_process_group()


def all_reduce_ms(numel: int, port: int, rounds: int = 100) -> float:
    """Median milliseconds of one gloo all-reduce of `numel` float32 values, 2 processes."""
    import torch.multiprocessing as mp

    context = mp.get_context("spawn")
    results = context.Queue()
    workers = [
        context.Process(target=_all_reduce_worker, args=(rank, port, numel, rounds, results))
        for rank in range(2)
    ]
    for worker in workers:
        worker.start()
    median = results.get(timeout=120)
    for worker in workers:
        worker.join()
    return 1000 * median


def cnn_parameters() -> int:
    """How many weights the digits CNN (conf/model/cnn.yaml) has: its gradient's size."""
    from dlpipe.models.registry import build_model

    model = build_model(
        {"_target_": "dlpipe.models.cnn.cnn", "channels": [32, 64], "hidden": 128}, (1, 8, 8), 10
    )
    return sum(p.numel() for p in model.parameters())


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


def epoch_cost(project: Path, client, address: str, overrides: list[str]) -> dict:
    """Start-up, and the per-epoch cost split into a fixed part and a per-step part: the
    median epoch at two batch sizes (so two step counts) gives both."""
    workers = 2 if "cluster.num_workers=2" in overrides else 1
    train_size = json.loads((project / "data/prepared/meta.json").read_text())["sizes"]["train"]
    points, walls = [], []
    for batch in BATCHES:
        wall, run_id = train(project, address, [*overrides, f"data.batch_size={batch}"])
        epochs = epoch_times(client, run_id)
        shard = math.ceil(train_size / workers)  # each worker's samples (see ArrayLoader)
        steps = math.ceil(shard / batch)
        points.append((steps, statistics.median(epochs)))
        walls.append(wall - sum(epochs) - statistics.median(epochs))
    (few, short), (many, long) = sorted(points)
    step = (long - short) / (many - few)
    return {
        "startup": statistics.median(walls),
        "fixed": short - few * step,
        "step": step,
        "steps": dict(zip(BATCHES, (s for s, _ in points), strict=True)),
    }


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
            print("| mode | start-up | fixed per epoch | per step | epoch at batch 32 |")
            print("|---|---|---|---|---|")
            for mode, overrides in MODES.items():
                cost = epoch_cost(project, client, f"127.0.0.1:{port}", overrides)
                epoch = cost["fixed"] + cost["steps"][32] * cost["step"]
                print(
                    f"| {mode} | {cost['startup']:.1f} s | {1000 * cost['fixed']:.0f} ms | "
                    f"{1000 * cost['step']:.1f} ms | {epoch:.2f} s "
                    f"({cost['steps'][32]} steps) |",
                    flush=True,
                )
    finally:
        head.terminate()
        head.wait()
    numel = cnn_parameters()
    print(
        f"gloo all-reduce of the CNN's {numel} gradient values between 2 processes: "
        f"{all_reduce_ms(numel, port + 1):.2f} ms (median of 100)"
    )


if __name__ == "__main__":
    main()
