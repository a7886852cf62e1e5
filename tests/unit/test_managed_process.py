"""Stopping a managed process ends its whole session: children that moved to process groups of their own (Ray's
workers do, and the HAProxy one of them starts) are not left holding ports. Real processes, no mocks."""

from __future__ import annotations

import signal
import sys
import time

import psutil
import pytest

from ridecast.stack.process import ManagedProcess

# a leader that starts a child in a process group of its own (as Ray starts its workers), then blocks until told
LEADER = """
import os, subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], preexec_fn=os.setpgrp)
print(child.pid, flush=True)
time.sleep(600)
"""


def _started(tmp_path) -> tuple[ManagedProcess, int, int]:
    mp = ManagedProcess("leader", tmp_path / "run", tmp_path / "logs")
    rec = mp.start([sys.executable, "-c", LEADER])
    for _ in range(200):
        text = mp.log_file.read_text().strip().splitlines()
        if text and text[-1].isdigit():
            child = int(text[-1])
            assert psutil.Process(child).is_running() and psutil.Process(child).ppid() == rec["pid"]
            return mp, rec["pid"], child
        time.sleep(0.05)
    pytest.fail(f"the leader did not start its child: {mp.log_file.read_text()}")


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_stop_ends_the_children_in_groups_of_their_own(tmp_path, sig):
    mp, leader, child = _started(tmp_path)
    assert psutil.Process(child).pid != leader
    assert mp.stop(timeout=10, sig=sig, grace=2)
    assert _gone(leader) and _gone(child), "a child in its own process group outlived the stop"
    assert mp.info() is None and not mp.pid_file.exists()


def test_kill_ends_the_whole_session(tmp_path):
    mp, leader, child = _started(tmp_path)
    mp.kill()
    assert _gone(leader) and _gone(child), "a child in its own process group outlived kill -9"


def test_stop_ends_what_a_leader_that_died_alone_left(tmp_path):
    # the leader is killed without its session (as the demo's `python -m serve` was, its Ray killed under it): the
    # child in a group of its own lives on, holding whatever it held, until stop ends it
    mp, leader, child = _started(tmp_path)
    psutil.Process(leader).kill()
    mp._popen.wait(timeout=10)
    assert mp.info() is None and psutil.Process(child).is_running()
    assert mp.stop(grace=2)
    assert _gone(child), "the dead leader's child outlived the stop"
    assert not mp.pid_file.exists() and not mp.stop(grace=2)


def test_a_new_start_ends_what_its_dead_predecessor_left(tmp_path):
    mp, leader, child = _started(tmp_path)
    psutil.Process(leader).kill()
    mp._popen.wait(timeout=10)
    mp2, leader2, child2 = _started(tmp_path)
    try:
        assert _gone(child) and leader2 != leader and not _gone(child2)
    finally:
        mp2.kill()
