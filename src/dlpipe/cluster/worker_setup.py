"""What every Ray worker process of a dlpipe run does first (Ray's worker setup hook).

torch.distributed's Gloo (and NCCL's bootstrap) pick their network interface from the
host name, which on many hosts (containers, namespaces, a default /etc/hosts) resolves to
127.0.0.1: workers on different hosts then wait on each other's loopback until they time
out. The address Ray knows a node by is one the other nodes reach, so its interface is
the one to use.
"""

import logging
import os

log = logging.getLogger(__name__)
_SOCKET_SETTINGS = ("GLOO_SOCKET_IFNAME", "NCCL_SOCKET_IFNAME")


def interface_of(address: str) -> str | None:
    """The name of this host's network interface that holds `address`, if one does."""
    import psutil

    for name, addresses in psutil.net_if_addrs().items():
        if any(entry.address == address for entry in addresses):
            return name
    return None


def use_node_interface() -> None:
    """Point Gloo and NCCL at the interface of the node's Ray address, unless the user
    chose one (GLOO_SOCKET_IFNAME, NCCL_SOCKET_IFNAME)."""
    import ray

    address = ray.util.get_node_ip_address()
    name = interface_of(address)
    if name is None:
        log.warning(f"no network interface holds this node's address {address}")
        return
    for setting in _SOCKET_SETTINGS:
        os.environ.setdefault(setting, name)
