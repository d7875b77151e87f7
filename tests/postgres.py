"""A throwaway PostgreSQL server for tests: its own data directory, listening on one address
(127.0.0.1, or a bridge the test's hosts share), stopped by its own process group at
teardown.

PostgreSQL refuses to run as root, which CI is: there it runs as the `postgres` system
user (Debian's package makes one), its folder handed to that user.
"""

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

PG_BIN = Path("/usr/lib/postgresql/15/bin")
USER = "dlpipe"


class Postgres:
    """Start with `start()`, stop with `stop()`; `url(database)` names a database in it,
    `create(database)` makes one."""

    def __init__(self, port: int, host: str = "127.0.0.1") -> None:
        """`host`: the address it listens on; clients on that address's subnet may connect."""
        self.port = port
        self.host = host
        self.folder = Path(tempfile.mkdtemp(prefix="dlpipe-postgres-"))
        self.process: subprocess.Popen | None = None

    def _as_owner(self) -> list[str]:
        """The command prefix that runs a PostgreSQL program as the folder's owner."""
        return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    def start(self, timeout: float = 60) -> None:
        assert (PG_BIN / "postgres").is_file(), (
            f"PostgreSQL 15 is not installed ({PG_BIN} holds no postgres): "
            "apt-get install postgresql-15"
        )
        if os.geteuid() == 0:
            owner = pwd.getpwnam("postgres")
            os.chown(self.folder, owner.pw_uid, owner.pw_gid)
        data = self.folder / "data"
        subprocess.run(
            [*self._as_owner(), PG_BIN / "initdb", "-D", data, "-U", USER, "--auth=trust"],
            check=True,
            capture_output=True,
        )
        if self.host != "127.0.0.1":
            with open(data / "pg_hba.conf", "a") as rules:
                rules.write("host all all samenet trust\n")
        self.process = subprocess.Popen(
            [
                *self._as_owner(),
                PG_BIN / "postgres",
                "-D",
                data,
                "-h",
                self.host,
                "-p",
                str(self.port),
                "-k",
                self.folder,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while not self._ready():
            assert self.process.poll() is None, f"postgres exited {self.process.returncode}"
            assert time.monotonic() < deadline, f"postgres not up within {timeout} s"
            time.sleep(0.2)

    def _ready(self) -> bool:
        ready = [PG_BIN / "pg_isready", "-h", self.host, "-p", str(self.port), "-U", USER]
        return subprocess.run(ready, capture_output=True).returncode == 0

    def url(self, database: str) -> str:
        return f"postgresql://{USER}@{self.host}:{self.port}/{database}"

    def create(self, database: str) -> str:
        """Make database `database`; its URL."""
        import psycopg

        with psycopg.connect(self.url("postgres"), autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{database}"')
        return self.url(database)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)  # a fast shutdown
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=30)
        shutil.rmtree(self.folder, ignore_errors=True)
