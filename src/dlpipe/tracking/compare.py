"""`dlpipe compare`: runs side by side, what sets them apart and how they did, and their
learning curves in one image."""

import math
from pathlib import Path

from dlpipe import files
from dlpipe.errors import DlpipeError
from dlpipe.tracking.listing import aligned, cell, duration, metric_rank, started
from dlpipe.tracking.store import Run, Store
from dlpipe.tracking.store.query import Key

_PANEL_COLUMNS = 3


def table(runs: list[Run]) -> str:
    """A column per run: its name, status, start and duration, the params whose values
    differ between the runs, and every metric's latest value."""
    blank = ("",) * len(runs)
    rows = [
        ("run", *(run.run_id for run in runs)),
        ("name", *(run.run_name for run in runs)),
        ("status", *(run.status for run in runs)),
        ("started", *map(started, runs)),
        ("duration", *map(duration, runs)),
    ]
    differ = differing_params(runs)
    same = len({key for run in runs for key in run.params}) - len(differ)
    rows.append((f"params: {len(differ)} differ, {same} the same", *blank))
    rows += [(f"  {key}", *(run.params.get(key, "-") for run in runs)) for key in differ]
    rows.append(("metrics", *blank))
    keys = sorted({key for run in runs for key in run.metrics}, key=metric_rank)
    rows += [(f"  {key}", *(cell(run, Key("metrics", key)) for run in runs)) for key in keys]
    return aligned(rows)


def differing_params(runs: list[Run]) -> list[str]:
    """The params not all of `runs` have with the same value (missing counts as a value)."""
    keys = sorted({key for run in runs for key in run.params})
    return [key for key in keys if len({run.params.get(key) for run in runs}) > 1]


def plot(store: Store, runs: list[Run], path: Path) -> list[str]:
    """Write a PNG with a panel per metric logged at several steps (epochs), a line per
    run in each; return the metrics drawn.

    Raises:
        DlpipeError: no run has a metric with more than one step.
    """
    curves = {
        run.run_id: {key: store.history(run.run_id, key) for key in run.metrics} for run in runs
    }
    keys = sorted(
        {key for by_key in curves.values() for key, points in by_key.items() if len(points) > 1},
        key=metric_rank,
    )
    if not keys:
        raise DlpipeError("no learning curves to plot: no run has a metric logged at two epochs")
    _draw(runs, curves, keys, path)
    return keys


def _draw(runs: list[Run], curves: dict, keys: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # no display needed
    import matplotlib.pyplot as plt

    columns = min(_PANEL_COLUMNS, len(keys))
    rows = math.ceil(len(keys) / columns)
    size = (4.2 * columns, 3.2 * rows)
    figure, panels = plt.subplots(rows, columns, figsize=size, squeeze=False, layout="constrained")
    for panel, key in zip(panels.ravel(), keys, strict=False):
        for run in runs:
            points = curves[run.run_id].get(key, [])
            if points:
                steps, values = zip(*points, strict=True)
                panel.plot(steps, values, marker=".", label=f"{run.run_id[:8]} {run.run_name}")
        panel.set(title=key, xlabel="epoch")
        panel.legend(fontsize=7)
    for panel in panels.ravel()[len(keys) :]:
        panel.set_axis_off()
    with files.atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(figure)
