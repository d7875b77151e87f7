"""Ray Train scaling: the digits CNN on 1 and 2 Ray Train workers, against an in-process run.

    python benchmarks/distributed.py            # about 5 minutes on 2 cores
    python benchmarks/distributed.py --hosts    # and 2 workers on 2 hosts: as root, +1 minute

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

With --hosts, the same measures across hosts: a Ray head and two worker hosts, each a
network namespace on one bridge (as tests/integration/test_cluster.py builds them), the 2
workers placed one a host (SPREAD), and the all-reduce between processes on two hosts.
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
from project import ROOT, copy_project, stage

sys.path.insert(0, str(ROOT))  # the namespace hosts of the tests

EPOCHS = 8
BATCHES = (16, 32)
COMMON = [f"trainer.max_epochs={EPOCHS}", f"trainer.early_stopping.patience={EPOCHS}"]
MODES = {
    "in-process, 1 thread": ["cluster=local"],
    "Ray Train, 1 worker": ["cluster=ray", "cluster.num_workers=1"],
    "Ray Train, 2 workers": ["cluster=ray", "cluster.num_workers=2"],
}


def train(project: Path, address: str, overrides: list[str], host=None) -> tuple[float, str]:
    """Wall seconds of one training, and its MLflow run id; `host`: (Hosts, index) to run
    the training's command on."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "pipelines/train.py", *COMMON, *overrides]
    if "cluster=ray" in overrides:
        command.append(f"cluster.address={address}")
    if host is not None:
        hosts, index = host
        env["RAY_AUTH_MODE"] = "token"
        command = hosts.command(index, command)
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


def _all_reduce_worker(rank: int, port: int, numel: int, rounds: int, out, master: str) -> None:
    import torch
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://{master}:{port}", rank=rank, world_size=2)
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
        context.Process(
            target=_all_reduce_worker, args=(rank, port, numel, rounds, results, "127.0.0.1")
        )
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


def epoch_cost(project: Path, client, address: str, overrides: list[str], host=None) -> dict:
    """Start-up, and the per-epoch cost split into a fixed part and a per-step part: the
    median epoch at two batch sizes (so two step counts) gives both."""
    workers = 2 if "cluster.num_workers=2" in overrides else 1
    train_size = json.loads((project / "data/prepared/meta.json").read_text())["sizes"]["train"]
    points, walls = [], []
    for batch in BATCHES:
        batched = [*overrides, f"data.batch_size={batch}"]
        wall, run_id = train(project, address, batched, host)
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


def report(mode: str, cost: dict) -> None:
    epoch = cost["fixed"] + cost["steps"][32] * cost["step"]
    print(
        f"| {mode} | {cost['startup']:.1f} s | {1000 * cost['fixed']:.0f} ms | "
        f"{1000 * cost['step']:.1f} ms | {epoch:.2f} s ({cost['steps'][32]} steps) |",
        flush=True,
    )


def on_one_host(project: Path, port: int) -> None:
    head = start_cluster(port)
    try:
        client = MlflowClient(f"sqlite:///{project / 'mlflow.db'}")
        for mode, overrides in MODES.items():
            report(mode, epoch_cost(project, client, f"127.0.0.1:{port}", overrides))
    finally:
        head.terminate()
        head.wait()


def on_two_hosts(project: Path, logs: Path) -> float:
    """The 2-worker row with the workers on two hosts, the driver on the head; then the
    all-reduce between the two hosts: its median milliseconds."""
    from tests.hosts import Hosts, RayCluster

    hosts = Hosts(3)
    try:
        hosts.up()
        cluster = RayCluster(hosts, logs, cpus=1)
        cluster.start()
        client = MlflowClient(f"sqlite:///{project / 'mlflow.db'}")
        spread = [*MODES["Ray Train, 2 workers"], "cluster.placement_strategy=SPREAD"]
        cost = epoch_cost(project, client, cluster.address, spread, host=(hosts, 0))
        report("Ray Train, 2 workers on 2 hosts", cost)
        return bridge_all_reduce_ms(hosts, cnn_parameters())
    finally:
        hosts.down()


def bridge_all_reduce_ms(hosts, numel: int, port: int = 29512) -> float:
    """The all-reduce between a process on worker host 1 and one on worker host 2."""
    code = (
        "import sys, queue; sys.path.insert(0, sys.argv[1]); "
        "from distributed import _all_reduce_worker; q = queue.Queue(); "
        "_all_reduce_worker(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), 100, q, "
        "sys.argv[5]); print(q.get() if not q.empty() else '')"
    )
    master = hosts.address(1)
    args = [str(Path(__file__).parent), port, numel, master]
    # As dlpipe's Ray workers do (dlpipe.cluster.worker_setup): the hosts' own interface.
    env = {**os.environ, "GLOO_SOCKET_IFNAME": "eth0"}
    ranks = [
        subprocess.Popen(
            hosts.command(1 + rank, [sys.executable, "-c", code, args[0], rank, *args[1:]]),
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        for rank in range(2)
    ]
    said = [process.communicate(timeout=300)[0].strip() for process in ranks]
    return 1000 * float(said[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=36379, help="the local Ray head's port")
    parser.add_argument("--hosts", action="store_true", help="also across two hosts (root)")
    options = parser.parse_args()
    numel = cnn_parameters()
    with tempfile.TemporaryDirectory() as workdir:
        project = copy_project(Path(workdir))
        stage(project, "prepare.py")
        print("| mode | start-up | fixed per epoch | per step | epoch at batch 32 |")
        print("|---|---|---|---|---|")
        on_one_host(project, options.port)
        bridged = on_two_hosts(project, Path(workdir)) if options.hosts else None
    print(
        f"gloo all-reduce of the CNN's {numel} gradient values between 2 processes: "
        f"{all_reduce_ms(numel, options.port + 1):.2f} ms on one host"
        + (f", {bridged:.2f} ms between two hosts" if bridged is not None else "")
        + " (median of 100)"
    )


if __name__ == "__main__":
    main()
