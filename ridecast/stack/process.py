"""Background processes with a pid file and a log file in the state dir.

Each process is started in its own session (``setsid``) so that stopping it, or ``kill -9`` in a test,
takes its children with it (PyFlink's driver and its JVM share the group). Start is idempotent: a live
process with a matching pid file is reused, a stale pid file is replaced.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import psutil

__all__ = ["ManagedProcess", "free_port", "kept_identity"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def kept_identity(path: Path, make: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """What a managed server chose on its first start (ports, ids), kept in ``path`` and read back on every
    later start, so a restarted server comes back at the same address (clients and running jobs reconnect)."""
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        ident = make()
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(ident))
        tmp.replace(path)  # atomic: a crash leaves the old file or none, never half of one
        return ident


@dataclass
class ManagedProcess:
    name: str
    run_dir: Path
    log_dir: Path

    @property
    def pid_file(self) -> Path:
        return self.run_dir / f"{self.name}.json"

    @property
    def log_file(self) -> Path:
        return self.log_dir / f"{self.name}.log"

    def info(self) -> dict[str, Any] | None:
        """The pid-file record if the process is alive, else None. A stale file stays until a start, stop or kill
        ends what its dead leader may have left (:meth:`_end_orphans`)."""
        try:
            rec = json.loads(self.pid_file.read_text())
        except (FileNotFoundError, ValueError):
            return None
        try:
            proc = psutil.Process(rec["pid"])
            alive = proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
            alive = alive and abs(proc.create_time() - rec.get("create_time", proc.create_time())) < 1.0
        except psutil.Error:
            alive = False
        return rec if alive else None

    def start(self, cmd: Sequence[str], *, env: dict[str, str] | None = None, cwd: Path | None = None,
              extra: dict[str, Any] | None = None) -> dict[str, Any]:
        self._end_orphans(grace=10.0)  # a crashed predecessor's children would hold its ports, or write twice
        if (rec := self.info()) is not None:
            return rec
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("ab") as log:
            log.write(f"\n=== {time.strftime('%Y-%m-%dT%H:%M:%S')} starting: {' '.join(cmd)}\n".encode())
            log.flush()
            proc = subprocess.Popen(
                list(cmd), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env={**os.environ, **(env or {})}, cwd=cwd, start_new_session=True,
            )
        rec = {"pid": proc.pid, "create_time": psutil.Process(proc.pid).create_time(), "cmd": list(cmd),
               **(extra or {})}
        tmp = self.pid_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(rec))
        tmp.replace(self.pid_file)
        self._popen = proc  # keeps the child reaped when we are its parent
        return rec

    def stop(self, timeout: float = 15.0, sig: int = signal.SIGTERM, grace: float = 10.0) -> bool:
        """``sig`` (SIGTERM) to the process group, then SIGKILL after ``timeout``. True if something was running.

        A process whose children block a signal (Ray's do SIGINT) can be stopped with that one, so that only the
        parent gets it and stops them in order. What is left of its session once it has gone (processes that
        moved to groups of their own, as Ray's workers do, and what they started: Serve's HAProxy) gets
        ``grace`` seconds to exit, then SIGKILL: a stopped service holds no port."""
        rec = self.info()
        if rec is None:
            return self._end_orphans(grace)
        self._signal_group(rec["pid"], sig)
        if not self._leader_gone(timeout, poll=0.2):
            self._signal_group(rec["pid"], signal.SIGKILL)
            self._leader_gone(5.0, poll=0.1)
        self._end_session(rec["pid"], grace)
        self.pid_file.unlink(missing_ok=True)
        return True

    def kill(self) -> None:
        """``kill -9`` of the whole session, every process group in it: what a crash looks like."""
        rec = self.info()
        if rec is None:
            self._end_orphans(grace=0.0)
            return
        self._signal_group(rec["pid"], signal.SIGKILL)
        self._leader_gone(5.0, poll=0.05)
        self._end_session(rec["pid"], 0.0)

    def _leader_gone(self, timeout: float, poll: float) -> bool:
        """Wait up to ``timeout`` for the leader to exit (reaping it when we are its parent); True once it has."""
        deadline = time.monotonic() + timeout
        while self.info() is not None:
            self._reap()
            if time.monotonic() >= deadline:
                return False
            time.sleep(poll)
        return True

    def _end_orphans(self, grace: float) -> bool:
        """End what is left of a leader that went without a stop (it crashed, or something killed it alone): the
        rest of its session, SIGTERM then SIGKILL after ``grace``. True if something was left.

        The pid file names the session (its leader's pid). Linux does not reuse a pid while a live process still
        has it as its session id, so while the dead leader's pid is free, every process of that session is the
        leader's. A live process with that pid is another one, and then nothing is touched. Seen in the demo:
        ``python -m serve``'s Ray killed under it left Serve's HAProxy answering 500 on the service's port."""
        try:
            rec = json.loads(self.pid_file.read_text())
        except (FileNotFoundError, ValueError):
            return False
        self._reap()
        if self.info() is not None:
            return False
        left = [] if psutil.pid_exists(rec["pid"]) else self._session(rec["pid"])
        for proc in left:
            with contextlib.suppress(psutil.Error):
                proc.terminate()
        if left:
            self._end_session(rec["pid"], grace)
        self.pid_file.unlink(missing_ok=True)
        return bool(left)

    @staticmethod
    def _session(sid: int) -> list[psutil.Process]:
        """The live processes of session ``sid`` (a started process leads its own: ``start_new_session``)."""
        members = []
        for proc in psutil.process_iter():
            try:
                if os.getsid(proc.pid) == sid and proc.status() != psutil.STATUS_ZOMBIE:
                    members.append(proc)
            except (OSError, psutil.Error):  # exited meanwhile
                continue
        return members

    def _end_session(self, sid: int, grace: float) -> None:
        members = self._session(sid)
        if members and grace > 0:
            _gone, members = psutil.wait_procs(members, timeout=grace)
        for proc in members:
            with contextlib.suppress(psutil.Error):
                proc.kill()
        psutil.wait_procs(members, timeout=5)
        self._reap()

    def _reap(self) -> None:
        p = getattr(self, "_popen", None)
        if p is not None:
            p.poll()

    @staticmethod
    def _signal_group(pid: int, sig: int) -> None:
        try:
            os.killpg(os.getpgid(pid), sig)
        except (ProcessLookupError, PermissionError):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
