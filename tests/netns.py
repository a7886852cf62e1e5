"""A loopback-only network namespace, for what must not listen beyond 127.0.0.1 on this machine's own network (Ray
Serve's HAProxy ingress binds on every interface): the HAProxy test and the serve_latency benchmark run in one."""

from __future__ import annotations

import os
import socket
from collections.abc import Sequence


def only_loopback() -> bool:
    """This process's network namespace has no device but ``lo`` (``socket.if_nameindex()``; ``/sys/class/net``
    shows the namespace sysfs was mounted in, not this one)."""
    return [name for _i, name in socket.if_nameindex()] == ["lo"]


def in_loopback_only_namespace(argv: Sequence[str]) -> list[str]:
    """``argv`` run in a new network namespace with its loopback device up (``unshare --net``; as a user namespace's
    root when not root)."""
    unshare = ["unshare", "--net"] + ([] if os.geteuid() == 0 else ["--map-root-user"])
    return [*unshare, "sh", "-c", 'ip link set lo up && exec "$@"', "sh", *argv]


if __name__ == "__main__":  # exit 0 only where the namespace has no device but lo (the test's capability probe)
    raise SystemExit(0 if only_loopback() else 1)
