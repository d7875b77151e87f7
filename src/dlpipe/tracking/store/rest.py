"""Runs read from a tracking server through MLflow's REST API, with urllib.

The server filters and sorts (runs/search); the filter is sent as the clauses parsed
here, in MLflow's own spelling, so both readers take the same filters. A login in the
URI, or MLflow's MLFLOW_TRACKING_TOKEN or MLFLOW_TRACKING_USERNAME/PASSWORD, is sent as
MLflow's client sends it.
"""

import base64
import json
import os
import urllib.error
import urllib.parse
import urllib.request

from dlpipe.errors import TrackingError
from dlpipe.tracking.store.location import masked, server_address
from dlpipe.tracking.store.query import Clause, Order
from dlpipe.tracking.store.run import Run

# A page of runs/search (MLflow's largest) and of metrics/get-history.
_PAGE = 1000
_TIMEOUT_SECONDS = 10


class RestStore:
    """The runs a tracking server at `http(s)://host:port[/path]` holds."""

    def __init__(self, uri: str):
        self.uri = uri
        self._base, login = server_address(uri)
        self._headers = {"Content-Type": "application/json", **_authorization(login)}

    def search(
        self, experiment: str, clauses: list[Clause], order: Order | None, limit: int
    ) -> list[Run]:
        """The experiment's active runs that meet every clause, in `order` (the latest
        started first without one), at most `limit`; none if the experiment is new."""
        found = self._call("experiments/get-by-name", {"experiment_name": experiment})
        if found is None:
            return []
        body = {
            "experiment_ids": [found["experiment"]["experiment_id"]],
            "filter": " and ".join(clause.mlflow() for clause in clauses),
            "order_by": [order.mlflow()] if order else ["attributes.start_time DESC"],
        }
        runs: list[Run] = []
        while len(runs) < limit:
            page = self._call(
                "runs/search", body={**body, "max_results": min(_PAGE, limit - len(runs))}
            )
            runs.extend(_run(data) for data in page.get("runs", []))
            if not page.get("next_page_token"):
                break
            body["page_token"] = page["next_page_token"]
        return runs

    def get(self, run_id: str) -> Run:
        found = self._call("runs/get", {"run_id": run_id})
        if found is None:
            raise TrackingError(f"no run {run_id} in {masked(self.uri)}")
        return _run(found["run"])

    def history(self, run_id: str, key: str) -> list[tuple[int, float]]:
        """The metric's value at each step; the last one logged where a step has several."""
        query, points = {"run_id": run_id, "metric_key": key, "max_results": _PAGE}, []
        while True:
            page = self._call("metrics/get-history", query) or {}
            points.extend(page.get("metrics", []))
            if not page.get("next_page_token"):
                break
            query["page_token"] = page["next_page_token"]
        points.sort(key=lambda point: (int(point.get("step", 0)), int(point["timestamp"])))
        return sorted({int(p.get("step", 0)): float(p["value"]) for p in points}.items())

    def _call(self, endpoint: str, query: dict | None = None, body: dict | None = None):
        """The answer's JSON; None when the server has no such experiment or run."""
        url = f"{self._base}/api/2.0/mlflow/{endpoint}"
        if query:
            url += "?" + urllib.parse.urlencode(query)
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(url, data=data, headers=self._headers)
        try:
            with urllib.request.urlopen(request, timeout=_TIMEOUT_SECONDS) as answer:
                return json.loads(answer.read() or b"{}")
        except urllib.error.HTTPError as exc:
            error = _error(exc)
            if error.get("error_code") == "RESOURCE_DOES_NOT_EXIST":
                return None
            message = error.get("message") or f"HTTP {exc.code} {exc.reason}"
            raise TrackingError(f"tracking server {masked(self.uri)}: {message}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise TrackingError(
                f"tracking server {masked(self.uri)} is unreachable "
                f"({getattr(exc, 'reason', exc)}): start it or set tracking.uri / "
                "MLFLOW_TRACKING_URI to a running server"
            ) from None


def _authorization(login: str) -> dict[str, str]:
    """The login of the URI, else MLflow's environment variables, as a header."""
    user = os.environ.get("MLFLOW_TRACKING_USERNAME")
    password = os.environ.get("MLFLOW_TRACKING_PASSWORD")
    login = urllib.parse.unquote(login) or (f"{user}:{password}" if user and password else "")
    if login:
        return {"Authorization": f"Basic {base64.b64encode(login.encode()).decode()}"}
    token = os.environ.get("MLFLOW_TRACKING_TOKEN")
    return {"Authorization": f"Bearer {token}"} if token else {}


def _error(exc: urllib.error.HTTPError) -> dict:
    try:
        return json.loads(exc.read())
    except ValueError:
        return {}


def _run(data: dict) -> Run:
    info, content = data["info"], data.get("data", {})

    def pairs(name: str) -> dict:
        return {item["key"]: item.get("value", "") for item in content.get(name, [])}

    return Run(
        run_id=info["run_id"],
        run_name=info.get("run_name", ""),
        status=info["status"],
        start_time=_millis(info.get("start_time")),
        end_time=_millis(info.get("end_time")),
        params=pairs("params"),
        metrics={key: float(value) for key, value in pairs("metrics").items()},  # "NaN" too
        tags=pairs("tags"),
    )


def _millis(value) -> int | None:
    return int(value) if value not in (None, "") else None
