"""The MLflow record, read directly: a sqlite store with sqlite3, a tracking server with
its REST API.

Importing MLflow takes 2-3 s, several times what `dlpipe runs` may take to start; the
commands that only read the record (`dlpipe runs`, `dlpipe compare`) go around it. Runs
are written by MlflowClient only (dlpipe.tracking.client), so MLflow's own checks and
migrations stay in charge of what is stored.

Both readers answer the same three questions:

    search(experiment, clauses, order, limit) -> list[Run]
    get(run_id) -> Run                    (a TrackingError for an unknown id)
    history(run_id, key) -> [(step, value), ...]
"""

from typing import Protocol

from dlpipe.errors import TrackingError
from dlpipe.tracking.store.location import masked
from dlpipe.tracking.store.query import Clause, Order
from dlpipe.tracking.store.run import Run

# Tags dlpipe and MLflow put on runs, read here and written by dlpipe.tracking.client and MLflow.
FAILURE_TAG = "dlpipe.failure"
PRUNED_TAG = "dlpipe.pruned"
PARENT_TAG = "mlflow.parentRunId"


class Store(Protocol):
    uri: str

    def search(
        self, experiment: str, clauses: list[Clause], order: Order | None, limit: int
    ) -> list[Run]: ...

    def get(self, run_id: str) -> Run: ...

    def history(self, run_id: str, key: str) -> list[tuple[int, float]]: ...


def open_store(uri: str) -> Store:
    """A reader on the store at `uri`: `sqlite:///<path>` or `http(s)://host:port`.

    Raises:
        TrackingError: another kind of store, or a sqlite file that is missing.
    """
    if uri.startswith("sqlite:///"):
        from dlpipe.tracking.store.sqlite import SqliteStore

        return SqliteStore(uri)
    if uri.startswith(("http://", "https://")):
        from dlpipe.tracking.store.rest import RestStore

        return RestStore(uri)
    raise TrackingError(
        f"cannot read runs from {masked(uri)}: dlpipe reads sqlite:///<path> stores and "
        "http(s):// tracking servers (for others, use the MLflow UI or MlflowClient)"
    )
