"""Keep Ray Serve's HAProxy ingress on ``serving.host``: the launcher Ray starts in place of the ``haproxy`` binary.

Ray 2.60 renders HAProxy's stats and Prometheus frontends as ``bind *:8404`` and ``bind :9101``: every interface,
whatever ``http_options.host`` says (its HTTP frontend and the replicas' direct-ingress servers do follow it). In a
pod that is right; on a machine's own network it would expose them. Ray lets an operator name the binary it starts
(``RAY_SERVE_HAPROXY_BINARY_PATH``, how Ray's images point at theirs); ridecast names a launcher that confines each
wildcard ``bind`` of the config to ``serving.host`` and then becomes the real HAProxy (``exec``: same pid, same
arguments, so Ray's process bookkeeping, which finds its HAProxy by the config path on the command line, is unchanged).

A ``bind`` the launcher cannot place (an address that is neither a wildcard, ``serving.host``, a loopback address
nor a socket file) stops HAProxy from starting, with the reason on its stderr (Ray's HAProxy log): a Ray that
renders something new fails closed, not open.

Stdlib only, run as a file (``python -I serve/_haproxy.py``): HAProxy restarts on every route change, and this must
not import the service to do it.
"""

from __future__ import annotations

import argparse
import fcntl
import ipaddress
import os
import re
import shlex
import sys
from pathlib import Path

__all__ = ["HAProxyBindError", "confine_binds", "write_launcher"]

_BIND = re.compile(r"^(?P<lead>\s*bind\s+)(?P<addrs>\S+)(?P<rest>.*)$")
_WILDCARDS = {"", "*", "0.0.0.0", "::", "[::]"}
_SOCKET_PREFIXES = ("/", "unix@", "abns@", "abnsz@", "fd@", "sockpair@")


class HAProxyBindError(ValueError):
    """A ``bind`` line of Ray's HAProxy config that the launcher cannot confine to ``serving.host``."""


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return host == "localhost"


def _confine_address(addr: str, host: str) -> str:
    if addr.startswith(_SOCKET_PREFIXES):
        return addr  # a socket file: no network
    family = ""
    if addr.startswith(("ipv4@", "ipv6@")):
        family, addr = addr[:5], addr[5:]
    where, sep, port = addr.rpartition(":")
    if not sep:
        raise HAProxyBindError(f"bind address {addr!r} has no port")
    if where in _WILDCARDS:
        literal = f"[{host}]" if ":" in host and not host.startswith("[") else host
        return f"{literal}:{port}"
    if where.strip("[]") == host.strip("[]") or _is_loopback(where):
        return f"{family}{where}:{port}"
    raise HAProxyBindError(f"bind address {family}{where}:{port} is neither a wildcard, {host} nor a loopback "
                           f"address: HAProxy not started (this Ray renders a frontend ridecast does not know)")


def confine_binds(config: str, host: str) -> str:
    """``config`` with every wildcard ``bind`` address on ``host`` (a wildcard ``host``, as in a pod, leaves it
    as is). Socket files and addresses already on ``host`` or the loopback stay; anything else raises
    :class:`HAProxyBindError`."""
    if host in _WILDCARDS:
        return config
    out = []
    for line in config.splitlines(keepends=True):
        m = _BIND.match(line.rstrip("\n"))
        if m:  # a comment line does not start with "bind"
            addrs = ",".join(_confine_address(a, host) for a in m["addrs"].split(","))
            line = f"{m['lead']}{addrs}{m['rest']}" + ("\n" if line.endswith("\n") else "")
        out.append(line)
    return "".join(out)


def write_launcher(path: Path, host: str, haproxy: str) -> Path:
    """Write the executable Ray starts as its HAProxy (``RAY_SERVE_HAPROXY_BINARY_PATH``): this file, run by this
    interpreter in isolated mode, confining binds to ``host`` and then exec-ing ``haproxy``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-I", str(Path(__file__).resolve()), "--host", host, "--haproxy", haproxy, "--"]
    path.write_text(f"#!/bin/sh\nexec {shlex.join(cmd)} \"$@\"\n")
    path.chmod(0o755)
    return path


def _config_path(args: list[str]) -> str | None:
    for flag, value in zip(args, args[1:]):
        if flag == "-f":
            return value
    return None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="serve/_haproxy.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--host", required=True, help="the address wildcard binds are confined to (serving.host)")
    p.add_argument("--haproxy", required=True, help="the real HAProxy binary")
    p.add_argument("args", nargs=argparse.REMAINDER, help="HAProxy's own arguments, after --")
    ns = p.parse_args(argv)
    args = ns.args[1:] if ns.args[:1] == ["--"] else ns.args
    cfg = _config_path(args)
    if cfg is not None:
        # Ray writes the config under an exclusive lock on <config>.lock; take the same one, so a config it is
        # rewriting for the next reload is never read half-written, nor overwritten by this older one
        with open(f"{cfg}.lock", "w") as lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            text = Path(cfg).read_text()
            try:
                confined = confine_binds(text, ns.host)
            except HAProxyBindError as exc:
                print(f"ridecast: {exc} ({cfg})", file=sys.stderr)
                return 2
            if confined != text:
                Path(cfg).write_text(confined)
    os.execv(ns.haproxy, [ns.haproxy, *args])
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
