"""What a process tree listens on: the check behind "nothing listens beyond 127.0.0.1 locally" in the tests that
run a real service (the forecasting service, the feature job)."""

from __future__ import annotations

import ipaddress

import psutil


def listening(pid: int) -> dict[str, set[tuple[str, int]]]:
    """Process name -> the (address, port) pairs it listens on (TCP), over ``pid`` and all its descendants."""
    seen: dict[str, set[tuple[str, int]]] = {}
    root = psutil.Process(pid)
    for proc in [root, *root.children(recursive=True)]:
        try:
            name, conns = proc.name(), proc.net_connections(kind="tcp")
        except psutil.Error:  # exited meanwhile
            continue
        for c in conns:
            if c.status == psutil.CONN_LISTEN:
                seen.setdefault(name, set()).add((c.laddr.ip, c.laddr.port))
    return seen


def on_loopback(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    mapped = getattr(ip, "ipv4_mapped", None)  # a dual-stack socket on ::ffff:127.0.0.1 (Ray's gRPC servers)
    return ip.is_loopback or bool(mapped and mapped.is_loopback)


def beyond_loopback(listeners: dict[str, set[tuple[str, int]]]) -> dict[str, list[tuple[str, int]]]:
    """The listeners of a :func:`listening` map that are not on a loopback address, by process name (none: empty)."""
    out = {name: sorted(a for a in addrs if not on_loopback(a[0])) for name, addrs in listeners.items()}
    return {name: addrs for name, addrs in out.items() if addrs}
