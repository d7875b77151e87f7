"""The experiment's runs as a table or as JSON (`dlpipe runs`), and the clean-up of runs
whose process died (`dlpipe runs --stale`).

The table shows, besides each run's id, status, name, start and duration, its key
columns: the params that tell one training from another at a glance (the data set, the
model family, the optimiser and its learning rate) and the summary metrics, those that
training and evaluation log once per run: `best/<monitor>` (the checkpointed epoch's
score) and `test/*`. Only the key columns some listed run has are shown; `--columns`
picks others.
"""

import json
import math
from datetime import datetime

from dlpipe.tracking.store import FAILURE_TAG, PRUNED_TAG, Run
from dlpipe.tracking.store.query import Key, QueryError, parse_key

KEY_PARAMS = ("data.name", "model.name", "optim.name", "optim.lr")
# Metrics by what they measure: summaries first, then the last epoch's.
METRIC_GROUPS = ("best/", "test/", "val/", "train/")
_SUMMARY_GROUPS = METRIC_GROUPS[:2]


def key_columns(runs: list[Run]) -> list[Key]:
    """The key params, then the summary metrics, that at least one of `runs` has."""
    params = [Key("params", name) for name in KEY_PARAMS if any(name in r.params for r in runs)]
    summaries = {key for run in runs for key in run.metrics if key.startswith(_SUMMARY_GROUPS)}
    return params + [Key("metrics", name) for name in sorted(summaries, key=metric_rank)]


def metric_rank(key: str) -> tuple[int, str]:
    """Sorts metrics by group (best/, test/, val/, train/, others), then by name."""
    group = next((i for i, g in enumerate(METRIC_GROUPS) if key.startswith(g)), len(METRIC_GROUPS))
    return group, key


def parse_columns(text: str) -> list[Key]:
    """`params.model.hidden,metrics.val/loss`: the columns to show instead of the key ones."""
    columns = [parse_key(name) for name in text.split(",") if name.strip()]
    for key in columns:
        if key.kind == "attributes":
            raise QueryError(f"{key} is shown already: columns are params, metrics or tags")
    return columns


def check_shown(runs: list[Run], key: Key, purpose: str) -> None:
    """Raise a QueryError naming what the runs have when none of them has `key` (a typo)."""
    if key.kind == "attributes" or not runs or any(key.name in _values(r, key) for r in runs):
        return
    held = sorted({name for run in runs for name in _values(run, key)})
    raise QueryError(
        f"cannot {purpose} {key}: none of the runs found has it; they have {key.kind} "
        f"{', '.join(held) or '(none)'}"
    )


def table(runs: list[Run], columns: list[Key]) -> str:
    """One line per run, aligned: id, status, name, start, duration, `columns`, and a note
    (why it failed, or that a search pruned it)."""
    header = ("run", "status", "name", "started", "duration", *map(_title, columns), "note")
    rows = [
        (
            run.run_id,
            run.status,
            run.run_name,
            started(run),
            duration(run),
            *(cell(run, key) for key in columns),
            run.tags.get(FAILURE_TAG) or ("pruned" if run.tags.get(PRUNED_TAG) else ""),
        )
        for run in runs
    ]
    return aligned([header, *rows])


def as_json(runs: list[Run]) -> str:
    """Every run with all its params, metrics and tags; times in ms since the epoch."""
    return json.dumps([run.as_json() for run in runs], indent=2)


def aligned(rows: list[tuple[str, ...]]) -> str:
    """Rows as text columns, each as wide as its widest cell, two spaces apart."""
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


def cell(run: Run, key: Key) -> str:
    """A param or tag as logged, a metric to 4 significant digits, '-' when missing."""
    value = _values(run, key).get(key.name)
    if value is None:
        return "-"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def started(run: Run) -> str:
    """The run's start, in local time."""
    if not run.start_time:
        return "-"
    return datetime.fromtimestamp(run.start_time / 1000).strftime("%Y-%m-%d %H:%M:%S")


def duration(run: Run) -> str:
    """3.9s, 12m05s, 2h07m; '-' while the run has not ended."""
    if not run.start_time or not run.end_time:
        return "-"
    seconds = (run.end_time - run.start_time) / 1000
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, whole = divmod(math.floor(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{whole:02d}s"
    return f"{minutes // 60}h{minutes % 60:02d}m"


def fail_stale(uri: str, experiment: str) -> list[str]:
    """Mark FAILED this host's RUNNING runs whose process has ended; return their ids.

    This writes to the store, so it goes through MLflow (seconds to import).
    """
    from dlpipe.tracking import client as tracking

    client = tracking.get_client(uri)
    found = client.get_experiment_by_name(experiment)
    return tracking.fail_orphans(client, found.experiment_id) if found else []


def _title(key: Key) -> str:
    """A column's title: the bare key for params and metrics, which the table shows by kind."""
    return key.name if key.kind in ("params", "metrics") else str(key)


def _values(run: Run, key: Key) -> dict:
    return {"params": run.params, "metrics": run.metrics, "tags": run.tags}.get(key.kind, {})
