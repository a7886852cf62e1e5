"""Health check of the app image's long-running roles: the chart's feed probes and Docker's HEALTHCHECK.

The image runs several roles (entrypoint.sh); a batch job has nothing to probe, so only two are checked:

- ``python -m serve --feed`` (the online-feature feed): its health file (``RIDECAST_SERVING__FEED_HEALTH_FILE``,
  else ``$RIDECAST_HOME/run/feed.health``, the default of ``Settings.feed_health_file``), which the feed rewrites
  after every poll. Alive: rewritten within ``FEED_MAX_AGE_S``. ``--ready`` also needs its first word to be
  ``ok`` (the last poll did not fail). The chart's feed Deployment runs this as its liveness and readiness probes.
- ``python -m serve`` (serving): Ray Serve's own proxy health route. Kubernetes ignores this for serving (the
  chart's Ray probes do the same there); it serves ``docker run`` and compose users.

Standard library only: a probe starts it every few seconds.
"""

import os
import sys
import time
import urllib.request

# The feed rewrites its file after every 1 s poll; while no broker answers, after every failed attempt: a poll, its
# broker check's 5 s timeout, then 5 s of retry wait (a cycle of ~11 s, measured in the outage test). Far more.
FEED_MAX_AGE_S = 90.0


def feed_health_file() -> str:
    explicit = os.environ.get("RIDECAST_SERVING__FEED_HEALTH_FILE")
    if explicit:
        return explicit
    return os.path.join(os.path.abspath(os.environ.get("RIDECAST_HOME", ".ridecast")), "run", "feed.health")


def check_feed(ready: bool, now: float | None = None) -> int:
    path = feed_health_file()
    try:
        age = (time.time() if now is None else now) - os.stat(path).st_mtime
        with open(path, encoding="utf-8") as f:
            word = f.read(16).split(" ", 1)[0]
    except OSError as exc:
        print(f"feed health file {path}: {exc}", file=sys.stderr)
        return 1
    if age > FEED_MAX_AGE_S:
        print(f"feed health file {path} is {age:.0f} s old: the feed loop is stuck", file=sys.stderr)
        return 1
    if ready and word != "ok":
        print(f"feed not ready: its last poll failed ({path})", file=sys.stderr)
        return 1
    return 0


def main(cmdline: str = "/proc/1/cmdline", argv: list[str] | None = None) -> int:
    ready = "--ready" in (sys.argv[1:] if argv is None else argv)
    with open(cmdline, "rb") as f:
        args = f.read().split(b"\0")
    if b"serve" not in args or b"-m" not in args:
        return 0
    if b"--feed" in args:
        return check_feed(ready)
    port = os.environ.get("RIDECAST_SERVING__PORT", "8000")
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/-/healthz", timeout=5) as resp:
            return 0 if resp.status == 200 else 1
    except OSError:
        return 1


if __name__ == "__main__":
    sys.exit(main())
