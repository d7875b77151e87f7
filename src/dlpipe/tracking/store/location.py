"""Where the runs are: the tracking store's URI, read and checked without MLflow or Hydra.

`dlpipe runs` must start in well under a second, and importing MLflow takes several times
as long: the store's readers (dlpipe.tracking.store) and dlpipe.tracking.client share these helpers.
"""

import os
import urllib.parse
from pathlib import Path

from dlpipe.errors import TrackingError


def resolve_uri(setting: str | None) -> str:
    """tracking.uri if set, else MLFLOW_TRACKING_URI, else mlflow.db at the project root."""
    uri = setting or os.environ.get("MLFLOW_TRACKING_URI")
    return uri or f"sqlite:///{project_root(Path.cwd()) / 'mlflow.db'}"


def sqlite_file(uri: str) -> Path:
    """The file of a `sqlite:///<path>` store.

    Raises:
        TrackingError: the URI names no file (a store in memory keeps no run past the
            process) or names a folder: errors no retry can mend, said at once.
    """
    path = uri.removeprefix("sqlite:///")
    if not uri.startswith("sqlite:///") or path in ("", ":memory:"):
        raise TrackingError(
            f"tracking store {uri} names no file, and a store in memory keeps no run: set "
            "tracking.uri or MLFLOW_TRACKING_URI to sqlite:///path/mlflow.db"
        )
    if Path(path).is_dir():
        raise TrackingError(
            f"tracking store {uri} names a folder, not a file: name the store's file, e.g. "
            f"sqlite:///{Path(path) / 'mlflow.db'}"
        )
    return Path(path)


def server_address(uri: str) -> tuple[str, str]:
    """`http(s)://[login@]host[:port][/path]` as the address without its login, and the login.

    Raises:
        TrackingError: the URI is no URL (a bracket unclosed, a port out of range).
    """
    try:
        parts = urllib.parse.urlsplit(uri.rstrip("/"))
        parts.port  # noqa: B018 - read to check it
    except ValueError as exc:
        raise TrackingError(
            f"tracking.uri {masked(uri)} is no URL ({exc}): set it to http(s)://host:port"
        ) from None
    login, _, host = parts.netloc.rpartition("@")
    return parts._replace(netloc=host).geturl(), login


def masked(uri: str) -> str:
    """The URI with a password in it masked, for messages."""
    if uri.startswith("sqlite:///"):  # a path: no login in it
        return uri
    from dlpipe.config import secrets

    return secrets.mask_text(uri)


def project_root(cwd: Path) -> Path:
    """The working directory, except in a queued DVC experiment: that runs in a throw-away
    copy under <project>/.dvc/tmp/exps/, and its runs belong in the project's store."""
    parts = cwd.resolve().parts
    for start in range(len(parts) - 2):
        if parts[start : start + 3] == (".dvc", "tmp", "exps"):
            return Path(*parts[:start])
    return cwd.resolve()
