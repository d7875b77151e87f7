"""Data larger than memory: memory and speed of preparing images into shards and streaming them.

    python benchmarks/streaming.py --baseline ../base  # 1.5 and 6 GiB of images on disk
    python benchmarks/streaming.py --gib 0.05      # a quick look at a small scale
    python benchmarks/streaming.py --tables 0.5    # CSV tables of 0.5 and 2 GiB instead

Generated images (128x128 colour noise PNGs: they do not compress, so their size on disk is
their pixels' size) are prepared with `data.shards.above_mb=0` and trained on through the
stages, at `--gib` and 4 times it:

- memory: peak resident memory of each stage, its worker processes summed in (sampled
  every 50 ms, as proportional set sizes: pages shared by forked processes count once), at
  1x and 4x the data, and of the driver of a 2-worker Ray Train run; streaming keeps it flat;
- prepare: images/s, against a single-process loop reading the same files into one array
  (the baseline, which must hold every image in memory);
- training: samples/s of one MLP trained by the same plain loop from dlpipe's streamed
  shards, and from a plain torch DataLoader over the same image files (the peer) with the
  same number of worker processes; and on digits-sized data (1797 8x8 images) the stage
  in memory (the default for small data) against forced shards.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
from multiprocessing import Pool
from pathlib import Path

import numpy as np
import psutil
from project import copy_project

SIZE = 128
CLASSES = 10
IMAGE_BYTES = SIZE * SIZE * 3
WORKERS = 2
BATCH = 64


def _write_images(job: tuple[Path, int, int]) -> None:
    from PIL import Image

    folder, start, count = job
    rng = np.random.default_rng(start)
    for index in range(start, start + count):
        pixels = rng.integers(0, 256, size=(SIZE, SIZE, 3), dtype=np.uint8)
        # The class shows in the mean colour, so that a model has something to learn.
        label = index % CLASSES
        pixels[..., label % 3] //= 2
        Image.fromarray(pixels).save(folder / f"c{label}" / f"{index:07d}.png")


def generate(folder: Path, count: int) -> Path:
    """`count` images in `folder`/c0..c9, written by a process per core."""
    for label in range(CLASSES):
        (folder / f"c{label}").mkdir(parents=True, exist_ok=True)
    step = 2000
    jobs = [(folder, start, min(step, count - start)) for start in range(0, count, step)]
    with Pool(os.cpu_count()) as pool:
        pool.map(_write_images, jobs)
    return folder


def disk_bytes(folder: Path) -> int:
    return sum(file.stat().st_size for file in folder.rglob("*.png"))


def peak_memory(
    command: list[str], cwd: Path, env: dict | None = None, tree: bool = True
) -> tuple[float, float]:
    """Run `command`; its seconds and the peak resident memory (GiB) of it and (`tree`)
    every process it started, summed, sampled every 50 ms."""
    start = time.perf_counter()
    # Its log to a file: a pipe nobody reads until the end would block it once full.
    with tempfile.TemporaryFile("w+") as log:
        process = subprocess.Popen(
            command,
            cwd=cwd,
            env={**os.environ, "PYTHONWARNINGS": "ignore", **(env or {})},
            stdout=subprocess.DEVNULL,
            stderr=log,
            text=True,
        )
        peak = _peak_while_running(process, tree)
        if process.returncode:
            log.seek(0)
            raise SystemExit(f"{' '.join(command)} failed:\n{log.read()[-5000:]}")
    return time.perf_counter() - start, peak / 2**30


def _peak_while_running(process: subprocess.Popen, tree: bool) -> int:
    watched, peak = psutil.Process(process.pid), 0
    while process.poll() is None:
        try:
            watching = [watched, *(watched.children(recursive=True) if tree else [])]
            # Proportional set sizes: pages a worker shares with its parent count once.
            peak = max(peak, sum(p.memory_full_info().pss for p in watching if p.is_running()))
        except psutil.Error:
            pass
        time.sleep(0.05)
    return peak


def stages(project: Path, images: Path) -> dict[str, float]:
    """Prepare (forced into shards) and one epoch of MLP training on `images`."""
    data = [
        "data=images",
        f"data.path={images}",
        "data.shards.above_mb=0",
        f"data.stream.workers={WORKERS}",
        f"data.batch_size={BATCH}",
    ]
    python = sys.executable
    prepare_s, prepare_gib = peak_memory([python, "pipelines/prepare.py", *data], project)
    train = [python, "pipelines/train.py", *data, "model=mlp", "trainer.max_epochs=1"]
    _, train_gib = peak_memory([*train, "registry.name=null"], project)
    # Ray Train: the driver alone (the cluster's processes are its children here); half a
    # CPU per worker leaves Ray Data one of the two cores to read with.
    ray = ["cluster=ray", "cluster.num_workers=2", "cluster.resources_per_worker.CPU=0.5"]
    _, driver_gib = peak_memory([*train, *ray, "registry.name=null"], project, tree=False)
    return {
        "prepare_s": prepare_s,
        "prepare_gib": prepare_gib,
        "train_gib": train_gib,
        "driver_gib": driver_gib,
    }


def loop_prepare(images: Path, limit: int) -> float:
    """Images/s of a single-process loop reading the first `limit` files into one array."""
    from PIL import Image

    files = sorted(images.rglob("*.png"))[:limit]
    start = time.perf_counter()
    array = np.stack([np.asarray(Image.open(file).convert("RGB")) for file in files])
    return len(array) / (time.perf_counter() - start)


class FilesDataset:
    """The peer: each image file opened, decoded and scaled when asked for."""

    def __init__(self, images: Path) -> None:
        self.files = sorted(images.rglob("*.png"))

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int):
        import torch
        from PIL import Image

        file = self.files[index]
        pixels = np.asarray(Image.open(file).convert("RGB"), dtype=np.float32) / 255
        label = int(file.parent.name[1:])
        return torch.from_numpy(pixels.transpose(2, 0, 1)), label


def timed_loop(batches, steps: int) -> float:
    """Samples/s of `steps` SGD steps of one MLP on `batches` (after 20 warm-up steps)."""
    import torch

    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Flatten(),
        torch.nn.Linear(IMAGE_BYTES, 64),
        torch.nn.ReLU(),
        torch.nn.Linear(64, 10),
    )
    optimiser = torch.optim.SGD(model.parameters(), lr=0.01)
    seen, start = 0, None
    for step, (x, y) in enumerate(batches):
        if step == 20:
            seen, start = 0, time.perf_counter()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        seen += len(y)
        if step == 20 + steps:
            break
    return seen / (time.perf_counter() - start)


def loader_speeds(project: Path, images: Path, steps: int) -> tuple[float, float]:
    """Samples/s of the same loop fed by dlpipe's shards and by the peer DataLoader."""
    import json

    import torch

    from dlpipe.data.shard_loader import ShardLoader

    prepared = project / "data/prepared"
    meta = json.loads((prepared / "meta.json").read_text())
    streamed = ShardLoader(prepared, meta, ("train",), BATCH, (WORKERS, 2048), True, 0)
    peer = torch.utils.data.DataLoader(
        FilesDataset(images), batch_size=BATCH, shuffle=True, num_workers=WORKERS
    )
    return timed_loop(iter(streamed), steps), timed_loop(iter(peer), steps)


def digits_speeds(project: Path, folder: Path, baseline: Path | None) -> dict[str, float]:
    """Seconds of the train stage (20 epochs) on 1797 8x8 digit images: in memory (and,
    with `baseline`, in memory by that checkout's code), and in shards."""
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    for index, (image, label) in enumerate(zip(digits.images, digits.target, strict=True)):
        (folder / str(label)).mkdir(parents=True, exist_ok=True)
        Image.fromarray((image * 15).astype(np.uint8)).save(folder / str(label) / f"{index}.png")
    data = ["data=images", f"data.path={folder}"]
    train = ["model=mlp", "registry.name=null", "trainer.max_epochs=20"]
    runs = {
        "memory": (project, [], None),
        "shards": (project, ["data.shards.above_mb=0", f"data.stream.workers={WORKERS}"], None),
    }
    if baseline is not None:  # its own code first on the path, ahead of the installed one
        runs["baseline memory"] = (baseline, [], {"PYTHONPATH": str(baseline / "src")})
    seconds = {}
    for name, (where, extra, env) in runs.items():
        peak_memory([sys.executable, "pipelines/prepare.py", *data, *extra], where, env)
        command = [sys.executable, "pipelines/train.py", *data, *extra, *train]
        seconds[name] = peak_memory([*command, "trainer.early_stopping=null"], where, env)[0]
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gib", type=float, default=1.5, help="the 1x size on disk, GiB")
    parser.add_argument("--steps", type=int, default=300, help="timed training steps")
    parser.add_argument(
        "--baseline",
        type=Path,
        default=None,
        help="a checkout of earlier code (git worktree add): digits in memory timed there too",
    )
    parser.add_argument(
        "--tables",
        type=float,
        default=None,
        help="instead: a generated CSV of this many GiB and 4 times it, prepared in shards",
    )
    args = parser.parse_args()
    if args.tables is not None:
        return table_rows(args.tables)
    with tempfile.TemporaryDirectory() as workdir:
        work = Path(workdir)
        project = copy_project(work / "project")
        rows = {}
        for scale in (1, 4):
            count = int(args.gib * scale * 2**30 / IMAGE_BYTES)
            images = generate(work / f"images{scale}", count)
            size = disk_bytes(images) / 2**30
            measured = stages(project, images)
            rows[scale] = (count, size, measured)
            print(
                f"{scale}x: {count} images, {size:.2f} GiB on disk: prepare "
                f"{count / measured['prepare_s']:.0f} images/s, peak {measured['prepare_gib']:.2f}"
                f" GiB; train peak {measured['train_gib']:.2f} GiB; Ray Train driver peak "
                f"{measured['driver_gib']:.2f} GiB",
                flush=True,
            )
        loop = loop_prepare(images, 20000)
        streamed, peer = loader_speeds(project, images, args.steps)
        digits = digits_speeds(project, work / "digits", args.baseline)
    report(rows, loop, streamed, peer, digits)


def write_csv(path: Path, gib: float) -> int:
    """A CSV of about `gib` GiB: 20 number columns, a text category and a label, written
    a block at a time; its rows."""
    import pandas as pd

    rng, rows, written = np.random.default_rng(0), 0, False
    while not written or path.stat().st_size < gib * 2**30:
        block = pd.DataFrame(rng.normal(size=(100_000, 20)), columns=[f"f{i}" for i in range(20)])
        block["colour"] = rng.choice(["red", "green", "blue"], size=len(block))
        block["label"] = np.where(block["f0"] + (block["colour"] == "red") > 0.5, "yes", "no")
        block.to_csv(path, mode="a", header=not written, index=False)
        rows, written = rows + len(block), True
    return rows


def table_rows(gib: float) -> None:
    """Peak memory and rows/s of preparing a CSV in shards at `gib` and 4 times it, and
    of pandas reading the smaller one whole (the in-memory path's first step)."""
    with tempfile.TemporaryDirectory() as workdir:
        work = Path(workdir)
        project = copy_project(work / "project")
        print("| CSV on disk | rows | prepare peak memory | rows/s |\n|---|---|---|---|")
        for scale in (1, 4):
            path = work / f"table{scale}.csv"
            rows = write_csv(path, gib * scale)
            data = [
                "data=table",
                f"data.path={path}",
                "data.target=label",
                "data.shards.above_mb=0",
                f"data.stream.workers={WORKERS}",
            ]
            seconds, peak = peak_memory([sys.executable, "pipelines/prepare.py", *data], project)
            size = path.stat().st_size / 2**30
            rate = rows / seconds
            print(f"| {size:.2f} GiB | {rows} | {peak:.2f} GiB | {rate:.0f} |", flush=True)
            if scale == 1:
                read = [sys.executable, "-c", f"import pandas; pandas.read_csv({str(path)!r})"]
                whole_s, whole_gib = peak_memory(read, project)
        print(f"\npandas reading the {gib:g} GiB file whole: {whole_gib:.2f} GiB, {whole_s:.1f} s")


def report(rows: dict, loop: float, streamed: float, peer: float, digits: dict[str, float]):
    (_, _, one), (count, size, four) = rows[1], rows[4]
    print("\n| measure | 1x | 4x | ratio 4x/1x |\n|---|---|---|---|")
    for key, name in (
        ("prepare_gib", "prepare peak GiB"),
        ("train_gib", "train peak GiB"),
        ("driver_gib", "Ray Train (2 workers) driver peak GiB"),
    ):
        print(f"| {name} | {one[key]:.2f} | {four[key]:.2f} | {four[key] / one[key]:.2f} |")
    rate = count / four["prepare_s"]
    print(
        f"\nprepare, 4x ({count} images, {size:.2f} GiB): {rate:.0f} images/s in shards "
        f"({WORKERS} processes) against {loop:.0f} images/s for a one-process loop into "
        f"one array: {rate / loop:.2f}x"
    )
    print(
        f"training loop fed from shards: {streamed:.0f} samples/s; from a DataLoader over "
        f"the files ({WORKERS} workers): {peer:.0f} samples/s; ratio {streamed / peer:.2f}"
    )
    shown = ", ".join(f"{name} {value:.1f} s" for name, value in digits.items())
    print(f"digits, the train stage of 20 epochs: {shown}")
    if "baseline memory" in digits:
        ratio = digits["baseline memory"] / digits["memory"]
        print(f"digits in memory, throughput against the baseline's: {ratio:.2f}")


if __name__ == "__main__":
    main()
