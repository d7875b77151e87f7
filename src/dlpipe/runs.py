"""The experiment's runs as a table, and the clean-up of runs whose process died."""

from datetime import datetime

from dlpipe import tracking

_COLUMNS = ("run", "status", "started", "duration", "note")


def recent(client, experiment: str, limit: int) -> list:
    """The experiment's `limit` most recently started runs; none if it does not exist yet."""
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return []
    return client.search_runs(
        [found.experiment_id], order_by=["attributes.start_time DESC"], max_results=limit
    )


def fail_stale(client, experiment: str) -> list[str]:
    """Mark FAILED this host's RUNNING runs whose process has ended; return their ids."""
    found = client.get_experiment_by_name(experiment)
    return tracking.fail_orphans(client, found.experiment_id) if found else []


def table(runs: list) -> str:
    """One line per run, columns aligned: id, status, start, duration, failure or pruning."""
    rows = [_COLUMNS, *(_row(run) for run in runs)]
    widths = [max(len(row[column]) for row in rows) for column in range(len(_COLUMNS))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


def _row(run) -> tuple[str, ...]:
    info, tags = run.info, run.data.tags
    note = tags.get(tracking.FAILURE_TAG) or ("pruned" if tags.get("dlpipe.pruned") else "")
    return (info.run_id, info.status, _time(info.start_time), _duration(info), note)


def _time(millis: int | None) -> str:
    return datetime.fromtimestamp(millis / 1000).strftime("%Y-%m-%d %H:%M:%S") if millis else "-"


def _duration(info) -> str:
    if not info.start_time or not info.end_time:
        return "-"
    return f"{(info.end_time - info.start_time) / 1000:.1f}s"
