"""Docker HEALTHCHECK of the app image: meaningful for the serving role only.

The image runs several roles (entrypoint.sh); a batch job has no port to probe, so only a container whose main
process is ``python -m serve`` is checked, against Ray Serve's own proxy health route. Kubernetes ignores this
(the chart's probes do the same there); it serves ``docker run`` and compose users.
"""

import os
import sys
import urllib.request


def main(cmdline: str = "/proc/1/cmdline") -> int:
    with open(cmdline, "rb") as f:
        argv = f.read().split(b"\0")
    if b"serve" not in argv or b"-m" not in argv:
        return 0
    port = os.environ.get("RIDECAST_SERVING__PORT", "8000")
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/-/healthz", timeout=5) as resp:
            return 0 if resp.status == 200 else 1
    except OSError:
        return 1


if __name__ == "__main__":
    sys.exit(main())
