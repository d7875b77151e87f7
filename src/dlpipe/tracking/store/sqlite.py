"""Runs read from MLflow's sqlite store with sqlite3, read-only.

The queries use the tables MLflow's runs have lived in for years (experiments, runs,
params, tags, latest_metrics, metrics); the tests run them against a store MLflow wrote.
"""

import math
import sqlite3

from dlpipe.errors import TrackingError
from dlpipe.tracking.store.location import sqlite_file
from dlpipe.tracking.store.query import Clause, Order
from dlpipe.tracking.store.run import Run

_RUN_COLUMNS = "r.run_uuid, r.name, r.status, r.start_time, r.end_time"
_ATTRIBUTES = {
    "run_id": "r.run_uuid",
    "run_name": "r.name",
    "status": "r.status",
    "user_id": "r.user_id",
    "artifact_uri": "r.artifact_uri",
    "start_time": "r.start_time",
    "end_time": "r.end_time",
}
# Where each kind of key is kept: its latest value for metrics.
_TABLES = {"metrics": "latest_metrics", "params": "params", "tags": "tags"}
# Runs whose params, tags or metrics are read in one query (sqlite caps a query's variables).
_CHUNK = 500


class SqliteStore:
    """The runs in `sqlite:///<path>`, opened read-only: nothing here can change the store."""

    def __init__(self, uri: str):
        self.uri = uri
        path = sqlite_file(uri)
        if not path.is_file():
            raise TrackingError(
                f"no tracking store at {path}: train first, or set tracking.uri or "
                "MLFLOW_TRACKING_URI to the store that holds the runs"
            )
        self._path = path
        self._db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=30)
        # As MLflow sets it on its own connections: LIKE is case-sensitive, ILIKE is not.
        self._db.execute("PRAGMA case_sensitive_like = true")

    def search(
        self, experiment: str, clauses: list[Clause], order: Order | None, limit: int
    ) -> list[Run]:
        """The experiment's active runs that meet every clause, in `order` (the latest
        started first without one), at most `limit`; none if the experiment is new."""
        found = self._query("SELECT experiment_id FROM experiments WHERE name = ?", [experiment])
        if not found:
            return []
        where, args = ["r.experiment_id = ?", "r.lifecycle_stage = 'active'"], [found[0][0]]
        for clause in clauses:
            condition, values = _condition(clause)
            where.append(condition)
            args.extend(values)
        ordering, order_args = _ordering(order)
        rows = self._query(
            f"SELECT {_RUN_COLUMNS} FROM runs r WHERE {' AND '.join(where)} "
            f"ORDER BY {ordering} LIMIT ?",
            [*args, *order_args, limit],
        )
        return self._runs(rows)

    def get(self, run_id: str) -> Run:
        rows = self._query(f"SELECT {_RUN_COLUMNS} FROM runs r WHERE r.run_uuid = ?", [run_id])
        if not rows:
            raise TrackingError(f"no run {run_id} in {self.uri}")
        return self._runs(rows)[0]

    def history(self, run_id: str, key: str) -> list[tuple[int, float]]:
        """The metric's value at each step; the last one logged where a step has several."""
        rows = self._query(
            "SELECT step, value, is_nan FROM metrics WHERE run_uuid = ? AND key = ? "
            "ORDER BY step, timestamp",
            [run_id, key],
        )
        return sorted({step: math.nan if is_nan else value for step, value, is_nan in rows}.items())

    def _runs(self, rows: list[tuple]) -> list[Run]:
        ids = [row[0] for row in rows]
        params, tags = self._values("params", ids), self._values("tags", ids)
        metrics = self._values("latest_metrics", ids, "CASE WHEN is_nan THEN NULL ELSE value END")
        return [
            Run(
                run_id=run_id,
                run_name=name or "",
                status=status,
                start_time=start,
                end_time=end,
                params=params.get(run_id, {}),
                metrics=_with_nan(metrics.get(run_id, {})),
                tags=tags.get(run_id, {}),
            )
            for run_id, name, status, start, end in rows
        ]

    def _values(self, table: str, ids: list[str], value: str = "value") -> dict[str, dict]:
        """{run id: {key: value}} from one of the key-value tables."""
        found: dict[str, dict] = {}
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start : start + _CHUNK]
            marks = ", ".join("?" * len(chunk))
            for run_id, key, content in self._query(
                f"SELECT run_uuid, key, {value} FROM {table} WHERE run_uuid IN ({marks})", chunk
            ):
                found.setdefault(run_id, {})[key] = content
        return found

    def _query(self, sql: str, args: list) -> list[tuple]:
        try:
            return self._db.execute(sql, args).fetchall()
        except sqlite3.DatabaseError as exc:  # not a database, or not MLflow's
            raise TrackingError(f"{self._path} is not a readable MLflow store ({exc})") from exc


def _with_nan(metrics: dict[str, float | None]) -> dict[str, float]:
    """sqlite holds no NaN: MLflow stores one as a flag, read back here as NULL."""
    return {key: math.nan if value is None else value for key, value in metrics.items()}


def _condition(clause: Clause) -> tuple[str, list]:
    """SQL that holds for the runs meeting `clause`, and its arguments."""
    key, op = clause.key, clause.op
    if key.kind == "attributes":
        return _compare(_ATTRIBUTES[key.name], op), [clause.value]
    number = "m.is_nan = 0 AND " if key.kind == "metrics" else ""
    return (
        f"EXISTS (SELECT 1 FROM {_TABLES[key.kind]} m WHERE m.run_uuid = r.run_uuid "
        f"AND m.key = ? AND {number}{_compare('m.value', op)})",
        [key.name, clause.value],
    )


def _compare(column: str, op: str) -> str:
    if op == "ILIKE":
        return f"lower({column}) LIKE lower(?)"
    return f"{column} {op} ?"


def _ordering(order: Order | None) -> tuple[str, list]:
    """ORDER BY terms: the order's key (runs without it last), then the latest started."""
    latest = "r.start_time DESC, r.run_uuid"
    if order is None:
        return latest, []
    direction = "DESC" if order.descending else "ASC"
    if order.key.kind == "attributes":
        return f"{_ATTRIBUTES[order.key.name]} {direction} NULLS LAST, {latest}", []
    number = " AND m.is_nan = 0" if order.key.kind == "metrics" else ""
    lookup = (
        f"(SELECT m.value FROM {_TABLES[order.key.kind]} m "
        f"WHERE m.run_uuid = r.run_uuid AND m.key = ?{number})"
    )
    return f"{lookup} {direction} NULLS LAST, {latest}", [order.key.name]
