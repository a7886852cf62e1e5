"""The first run on a fresh machine: no uv on PATH, empty caches.

The bug this guards: bootstrap captured its own "installing uv" log line into ``$UV`` and both environment
syncs failed on the first run (the second worked, as uv was then cached). The script is run from a copy in an
empty folder, with a PATH that has no uv, exactly as on a new machine.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from ridecast.config import repo_root


def test_bootstrap_installs_uv_on_a_machine_without_it(tmp_path: Path):
    fresh = tmp_path / "checkout"
    (fresh / "scripts").mkdir(parents=True)
    shutil.copy(repo_root() / "scripts" / "bootstrap.sh", fresh / "scripts" / "bootstrap.sh")
    path = os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep)
                           if p and not (Path(p) / "uv").exists())
    if shutil.which("uv", path=path):
        pytest.fail("could not build a PATH without uv")
    env = {**os.environ, "PATH": path}
    env.pop("UV_CACHE_DIR", None)
    done = subprocess.run(["bash", str(fresh / "scripts" / "bootstrap.sh"), "--print-uv"], env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 1, f"stdout must be the uv path alone (logs go to stderr): {lines}"
    uv = Path(lines[0])
    assert uv.is_relative_to(fresh / ".cache"), uv
    version = subprocess.run([str(uv), "--version"], capture_output=True, text=True, check=True).stdout
    assert version.startswith("uv "), version
    assert "installing uv" in done.stderr
