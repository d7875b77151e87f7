"""Several "hosts" on this machine: network namespaces on one bridge, each its own
address, for a Ray cluster that spans hosts without leaving the machine.

The bridge holds the first address (10.N.0.1, where this machine's own servers listen for
the hosts: PostgreSQL, the tracking server); host i has 10.N.0.(i + 2). Everything a host
runs is found by its namespace (`ip netns pids`), so teardown stops every process a test
started there by its own id, whatever the test did. Needs root, as CI runs.
"""

import contextlib
import fcntl
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from tests.conftest import BIN_DIR, git_env

RAY_PORT = 6379


def can_make_hosts() -> bool:
    """Root with iproute2: what network namespaces take."""
    return os.geteuid() == 0 and Path("/usr/sbin/ip").exists()


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


def _free_subnet() -> int:
    """N of a 10.N.0.0/24 that no interface of this machine has an address in."""
    taken = subprocess.run(["ip", "-o", "-4", "addr"], capture_output=True, text=True).stdout
    return next(n for n in range(20, 250) if f" 10.{n}.0." not in taken)


class Hosts:
    """`count` namespaces on a bridge of their own; `up()` makes them, `down()` removes them
    and stops whatever ran in them."""

    def __init__(self, count: int) -> None:
        tag = os.getpid() % 10000
        self.subnet = 0  # chosen by up()
        self.bridge = f"dlb{tag}"
        self.names = [f"dlh{tag}x{i}" for i in range(count)]
        self.started: list[subprocess.Popen] = []
        self.root = Path(tempfile.mkdtemp(prefix="dlh"))

    def temp(self, host: int) -> Path:
        """A folder of `host`'s own (what would be its /tmp)."""
        return self.root / str(host)

    @property
    def gateway(self) -> str:
        """This machine's address on the bridge, where the hosts reach its servers."""
        return f"10.{self.subnet}.0.1"

    def address(self, host: int) -> str:
        return f"10.{self.subnet}.0.{host + 2}"

    def up(self) -> None:
        # One subnet a bridge: chosen among those no interface uses, one test at a time.
        with open(Path(tempfile.gettempdir()) / "dlpipe-hosts.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            self.subnet = _free_subnet()
            _ip("link", "add", self.bridge, "type", "bridge")
            _ip("addr", "add", f"{self.gateway}/24", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")
        for host, name in enumerate(self.names):
            _ip("netns", "add", name)
            _ip(
                "link",
                "add",
                self._veth(host),
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                name,
            )
            _ip("link", "set", self._veth(host), "master", self.bridge, "up")
            _ip("-n", name, "addr", "add", f"{self.address(host)}/24", "dev", "eth0")
            _ip("-n", name, "link", "set", "eth0", "up")
            _ip("-n", name, "link", "set", "lo", "up")

    def _veth(self, host: int) -> str:
        return f"{self.bridge}v{host}"

    def command(self, host: int, cmd: list[str]) -> list[str]:
        """`cmd` as run on `host`."""
        return ["ip", "netns", "exec", self.names[host], *map(str, cmd)]

    def start(self, host: int, cmd: list[str], log: Path, **popen) -> subprocess.Popen:
        """Start `cmd` on `host` in the background, its output to `log`."""
        with open(log, "ab") as sink:
            process = subprocess.Popen(
                self.command(host, cmd),
                stdout=sink,
                stderr=subprocess.STDOUT,
                env=popen.pop("env", git_env()),
                start_new_session=True,
                **popen,
            )
        self.started.append(process)
        return process

    def run(self, host: int, cmd: list[str], cwd: Path, env: dict | None = None, **kwargs):
        """Run `cmd` on `host` to its end."""
        return subprocess.run(
            self.command(host, cmd),
            cwd=cwd,
            env=env or git_env(),
            capture_output=True,
            text=True,
            **kwargs,
        )

    def pids(self, host: int) -> list[int]:
        """Every process running on `host`."""
        listed = subprocess.run(
            ["ip", "netns", "pids", self.names[host]], capture_output=True, text=True
        )
        return [int(pid) for pid in listed.stdout.split()]

    def kill(self, host: int) -> None:
        """Kill every process on `host`, as a crash would."""
        for pid in self.pids(host):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def cut(self, host: int) -> None:
        """Take `host` off the network."""
        _ip("link", "set", self._veth(host), "down")

    def mend(self, host: int) -> None:
        _ip("link", "set", self._veth(host), "up")

    def down(self) -> None:
        for host in range(len(self.names)):
            self.kill(host)
        for process in self.started:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=30)
        for host, name in enumerate(self.names):
            subprocess.run(["ip", "link", "del", self._veth(host)], capture_output=True)
            subprocess.run(["ip", "netns", "del", name], capture_output=True)
        subprocess.run(["ip", "link", "del", self.bridge], capture_output=True)
        shutil.rmtree(self.root, ignore_errors=True)


def ray_env(**extra: str) -> dict[str, str]:
    """The environment Ray runs under on the hosts: token authentication, as a cluster on
    a network should have (the token in ~/.ray/auth_token, which these hosts share)."""
    return {**git_env(), "RAY_AUTH_MODE": "token", **extra}


class RayCluster:
    """A Ray head on host 0 and a worker node on each other host, `cpus` CPUs each
    (`head_cpus` on the head: 0 keeps work off it, as on a cluster whose head only
    coordinates)."""

    def __init__(self, hosts: Hosts, logs: Path, cpus: int = 1, head_cpus: int = 0) -> None:
        self.hosts = hosts
        self.logs = logs
        self.cpus = cpus
        self.head_cpus = head_cpus

    @property
    def address(self) -> str:
        return f"{self.hosts.address(0)}:{RAY_PORT}"

    def start(self, timeout: float = 120) -> None:
        head = ["--head", f"--port={RAY_PORT}", f"--num-cpus={self.head_cpus}"]
        self._node(0, head)  # with its dashboard, as `ray start --head` has by default
        self._wait_for(1, timeout)
        for host in range(1, len(self.hosts.names)):
            self.join(host)
        self._wait_for(len(self.hosts.names), timeout)

    def join(self, host: int) -> None:
        """Start a worker node on `host` (again, after it was lost)."""
        self._node(host, [f"--address={self.address}", f"--num-cpus={self.cpus}"])

    def _node(self, host: int, settings: list[str]) -> None:
        cmd = [
            BIN_DIR / "ray",
            "start",
            "--block",
            f"--node-ip-address={self.hosts.address(host)}",
            # Its own session folder, as on a host of its own (and short: Ray's sockets
            # live there).
            f"--temp-dir={self.hosts.temp(host)}",
            "--object-store-memory=200000000",
            *settings,
        ]
        self.hosts.start(host, cmd, self.logs / f"ray-{host}.log", env=ray_env())

    def alive_nodes(self) -> list[str]:
        """The addresses of the nodes the head counts alive."""
        listing = self.hosts.run(
            0,
            [BIN_DIR / "python", "-c", _LIST_NODES, self.address],
            cwd=self.logs,
            env=ray_env(),
            timeout=120,
        )
        return listing.stdout.split()

    def _wait_for(self, nodes: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.alive_nodes()) >= nodes:
                return
            time.sleep(1)
        logs = {path.name: path.read_text()[-2000:] for path in self.logs.glob("ray-*.log")}
        raise AssertionError(f"{nodes} Ray nodes not up within {timeout} s: {logs}")


_LIST_NODES = """
import sys, ray
try:
    ray.init(address=sys.argv[1], logging_level="ERROR", log_to_driver=False)
except Exception:
    sys.exit(0)
print(" ".join(n["NodeManagerAddress"] for n in ray.nodes() if n["Alive"]))
"""
