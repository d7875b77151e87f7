"""Reproducing a run from its MLflow record: the same code, data and config, the same numbers.

A training run records the git commit it ran at (and whether tracked source or config
files had changes: what the pipeline writes, dvc.lock and reports, does not count),
the hash of its prepared data and its composed config (the `config.yaml` artifact).
Reproducing it checks out nothing: it checks that the working tree is that commit, clean,
with that data; then it trains the recorded config again, as a new run tagged
`dlpipe.reproduces`, in a folder of its own (the project's models/ stays as it is), and
compares every metric the two trainings logged, epoch by epoch. On the CPU, with the same
seed, they are equal bit for bit.
"""

import contextlib
import logging
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from dlpipe import files
from dlpipe.config import checks as config
from dlpipe.config import secrets
from dlpipe.config.schema.validate import validate
from dlpipe.errors import ConfigError, DlpipeError, LineageError
from dlpipe.paths import PREPARED_DIR, Outputs
from dlpipe.record import RunRecord
from dlpipe.tracking import client as tracking
from dlpipe.tracking import lineage

REPRODUCES_TAG = "dlpipe.reproduces"
# What a training logs; evaluate's test/ metrics are not part of a reproduction.
TRAINING_METRICS = ("train/", "val/", "best/")
# Changed files named in a difference; the rest are counted.
_FILES_SHOWN = 10


@dataclass(frozen=True)
class Record:
    """What a run recorded about where it came from: its composed config and its tags."""

    run_id: str
    config: dict
    tags: dict[str, str]


@dataclass(frozen=True)
class MetricComparison:
    """One metric of the original run and of its reproduction: the value at each epoch."""

    name: str
    original: dict[int, float]
    reproduced: dict[int, float]

    @property
    def matches(self) -> bool:
        return self.original == self.reproduced

    def first_difference(self) -> int | None:
        """The first epoch (counted from 0) whose values differ or exist in one run only."""
        epochs = sorted(set(self.original) | set(self.reproduced))
        return next(
            (e for e in epochs if self.original.get(e) != self.reproduced.get(e)),
            None,
        )


def reproduce(client, run_id: str, force: bool = False) -> bool:
    """Train run `run_id` again from its record and print how the metrics compare.

    Returns whether every metric matched. Raises LineageError naming each difference
    between the working tree and the record, unless `force`: then it warns and trains.
    """
    record = read_record(client, run_id)
    found = differences(record.tags)
    if found and not force:
        raise LineageError(
            f"the working tree is not what run {run_id} was trained with (make it so, or "
            "pass --force to reproduce it anyway):\n  " + "\n  ".join(found)
        )
    for difference in found:
        print(f"warning: {difference}", file=sys.stderr)
    cfg = reproduction_config(record, client.tracking_uri)
    _show_progress()
    print(f"training run {run_id}'s config again, in a temporary folder", file=sys.stderr)
    reproduced = rerun(client, cfg, run_id)
    comparisons = compare(client, run_id, reproduced)
    print(table(comparisons))
    differing = [c.name for c in comparisons if not c.matches]
    if differing:
        print(f"run {reproduced} differs from run {run_id} in {', '.join(differing)}")
    else:
        print(f"run {reproduced} reproduces run {run_id}: every metric equal at every epoch")
    return not differing


def read_record(client, run_id: str) -> Record:
    """The config and tags of run `run_id`, a finished training in `client`'s store."""
    try:
        run = client.get_run(run_id)
    except tracking.TrackingStoreError as exc:
        where = secrets.mask_text(client.tracking_uri)
        raise DlpipeError(
            f"run {run_id} is not in tracking store {where}: `dlpipe runs` lists its runs "
            "(tracking.uri=... reads another store)"
        ) from exc
    if run.info.status != "FINISHED":
        raise DlpipeError(
            f"run {run_id} is {run.info.status}: only a finished training can be reproduced"
        )
    with tempfile.TemporaryDirectory() as folder:
        try:
            logged = tracking.download_artifact(client, run_id, "config.yaml", folder)
        except (tracking.TrackingStoreError, OSError) as exc:
            raise DlpipeError(
                f"run {run_id} holds no config.yaml: it is not a training's run (a sweep's "
                "parent run holds none), so there is nothing to train again"
            ) from exc
        recorded = OmegaConf.to_container(OmegaConf.load(logged))
    _check_unmasked(run_id, recorded)
    return Record(run_id, recorded, run.data.tags)


def _check_unmasked(run_id: str, recorded: dict) -> None:
    """Settings logged masked (secret-looking) were never recorded: the training cannot be
    repeated as it was."""
    masked = [
        key
        for key, value in config.flatten(recorded).items()
        # The store is the one the run is read from, given anew, not as logged.
        if secrets.MASK in str(value) and key != "tracking.uri"
    ]
    if masked:
        raise ConfigError(
            f"run {run_id} logged {', '.join(masked)} masked as {secrets.MASK}: a masked "
            "value is not recorded anywhere, so the run cannot be reproduced"
        )


def reproduction_config(record: Record, uri: str) -> DictConfig:
    """The run's config, to train again as a new run in the tracking store at `uri`."""
    settings = {
        **record.config,
        "tracking": {**record.config["tracking"], "uri": uri},
        # A reproduction is a run of its own: it must never continue the original.
        "resume": False,
    }
    if "search" in settings:
        # The search trial the run reported to is over; pruning changes no number.
        settings["search"] = {**settings["search"], "trial": None}
    cfg = OmegaConf.create(settings)
    try:
        validate(cfg)
    except ConfigError as exc:
        # Code of another commit (--force) may take other settings than the run had.
        raise ConfigError(
            f"run {record.run_id}'s config does not fit this code ({exc}): check out the "
            "commit the run was trained at"
        ) from exc
    return cfg


def differences(tags: dict[str, str], prepared: Path = PREPARED_DIR) -> list[str]:
    """How the working tree differs from a run's record (`tags`), each difference one
    sentence saying how to remove it; none when it is the run's commit, clean, with its data."""
    return [*_code_differences(tags), *_data_differences(tags.get("dlpipe.data_hash"), prepared)]


def _code_differences(tags: dict[str, str]) -> list[str]:
    recorded = tags.get("mlflow.source.git.commit")
    if recorded is None:
        return [
            "the run records no git commit (it ran outside a git work tree): its code is unknown"
        ]
    found = []
    commit, _ = lineage.git_state()
    if commit != recorded:
        here = f"commit {commit} is checked out" if commit else "this is not a git work tree"
        found.append(f"{here}; the run was trained at {recorded}: `git checkout {recorded}`")
    if tags.get("dlpipe.git_dirty") == "true":
        found.append(
            f"the run was trained with uncommitted changes on top of {recorded}: they were "
            "not recorded, so its code cannot be restored"
        )
    changed = lineage.changed_files()
    if changed:
        shown = ", ".join(changed[:_FILES_SHOWN])
        more = f" and {len(changed) - _FILES_SHOWN} more" if len(changed) > _FILES_SHOWN else ""
        found.append(f"uncommitted changes to {shown}{more}: commit or stash them")
    return found


def _data_differences(recorded: str | None, prepared: Path) -> list[str]:
    meta_file = prepared / "meta.json"
    fix = (
        f"prepare the run's data: `dvc checkout {prepared}` at its commit, or "
        "`python pipelines/prepare.py` with its data settings"
    )
    try:
        found = files.read_json(meta_file).get("hash")
    except (OSError, ValueError):
        return [f"{meta_file} is missing or unreadable: {fix}"]
    if found != recorded:
        return [f"{prepared} holds data of hash {found}; the run was trained on {recorded}: {fix}"]
    return []


def rerun(client, cfg: DictConfig, original: str) -> str:
    """Train `cfg` as a new run tagged as reproducing run `original`; return its id.

    It trains in a temporary folder, so the project's models/ and reports/ stay as they
    are; what the run keeps (metrics, config, best checkpoint) is in MLflow.
    """
    from dlpipe.training.train import train

    # What the training prints (Lightning's model summary) goes to stderr: stdout is
    # left to the report.
    with (
        tempfile.TemporaryDirectory(prefix="dlpipe-reproduce-") as folder,
        contextlib.redirect_stdout(sys.stderr),
    ):
        out = Outputs(Path(folder))
        try:
            return train(cfg, out).run_id
        finally:
            # A reproduction that failed says too what it reproduced.
            opened = _opened_run(out)
            if opened:
                client.set_tag(opened, REPRODUCES_TAG, original)


def _opened_run(out: Outputs) -> str | None:
    """The run a training under `out` opened: named in run.json once it finished, in
    resume.json until then; None when it stopped before opening one."""
    if out.run_file.is_file():
        return RunRecord.read(out.run_file).run_id
    if out.resume_file.is_file():
        return files.read_json(out.resume_file)["run_id"]
    return None


def compare(client, original: str, reproduced: str) -> list[MetricComparison]:
    """Every training metric either run logged, by name, with its value at each epoch."""
    first, second = _training_histories(client, original), _training_histories(client, reproduced)
    return [
        MetricComparison(name, first.get(name, {}), second.get(name, {}))
        for name in sorted(set(first) | set(second))
    ]


def _training_histories(client, run_id: str) -> dict[str, dict[int, float]]:
    names = [m for m in client.get_run(run_id).data.metrics if m.startswith(TRAINING_METRICS)]
    return {
        name: {m.step: m.value for m in client.get_metric_history(run_id, name)} for name in names
    }


def table(comparisons: list[MetricComparison]) -> str:
    """One line per metric: epochs logged, the last value in each run, whether all match."""
    rows = [("metric", "epochs", "original", "reproduced", "same")]
    for c in comparisons:
        epochs = str(len(c.original))
        if len(c.reproduced) != len(c.original):
            epochs += f" vs {len(c.reproduced)}"
        differs = c.first_difference()
        same = "yes" if differs is None else f"no, from epoch {differs + 1}"
        rows.append((c.name, epochs, _last(c.original), _last(c.reproduced), same))
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


def _last(history: dict[int, float]) -> str:
    """The last epoch's value, every digit of it: an exact comparison shows them all."""
    return repr(history[max(history)]) if history else "-"


def _show_progress() -> None:
    """The training's own lines (its run, each epoch, the best score) on stderr."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger = logging.getLogger("dlpipe")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
