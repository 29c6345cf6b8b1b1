"""Heartbeat records and the safe-takeover rule (design §2 "Safe takeover: never two masters")."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from stores.lock.heartbeat import RECORD_SIZE, HeartbeatWriter, heartbeat_path, read_heartbeat
from stores.lock.identity import Holder, LockLost
from stores.lock.takeover import TakeoverAborted, pid_alive, previous_master_gone
from tests.helpers.lockproc import LockProc

HERE = socket.gethostname()
KEEPALIVE, MARGIN = 0.2, 0.1


def _holder(name: str = "b1", host: str = "host-a", epoch: int = 3) -> Holder:
    return Holder(name, host, os.getpid(), 1_700_000_000.5, epoch)


class _FakeTime:
    """A clock that only moves when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 100.0
        self.slept = 0.0

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds > 0
        self.now += seconds
        self.slept += seconds
        assert self.slept < 60, "the wait does not end"


class _Gone:
    """Runs previous_master_gone in a thread, as the broker's executor does."""

    def __init__(self, data_dir: Path, my_host: str, keepalive: float, margin: float) -> None:
        self.reason: str | None = None
        self.at = 0.0
        self._thread = threading.Thread(target=self._run, args=(data_dir, my_host, keepalive, margin))
        self._thread.start()

    def _run(self, data_dir: Path, my_host: str, keepalive: float, margin: float) -> None:
        self.reason = previous_master_gone(data_dir, my_host, keepalive, margin)
        self.at = time.monotonic()

    def running(self) -> bool:
        return self._thread.is_alive()

    def join(self, timeout: float) -> str | None:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "previous_master_gone did not return"
        return self.reason


# --- heartbeat records -------------------------------------------------------------------------


def test_heartbeat_round_trip_and_counter(tmp_path: Path) -> None:
    assert read_heartbeat(tmp_path) is None
    holder = _holder(name="bröker")
    writer = HeartbeatWriter(tmp_path, holder, stale_after=0.5)
    assert not heartbeat_path(tmp_path).exists()  # nothing written before the first beat
    before = time.time()
    writer.beat()
    writer.beat()
    beat = read_heartbeat(tmp_path)
    assert beat is not None
    assert beat.holder == holder and beat.counter == 2 and not beat.released and beat.stale_after == 0.5
    assert before <= beat.time <= time.time()
    assert heartbeat_path(tmp_path).stat().st_size == RECORD_SIZE
    assert writer.mark_released()
    beat = read_heartbeat(tmp_path)
    assert beat is not None and beat.released and beat.counter == 3
    assert not writer.mark_released()  # closed: writes nothing more
    with pytest.raises(LockLost):
        writer.beat()


def test_long_names_are_clipped_not_refused(tmp_path: Path) -> None:
    writer = HeartbeatWriter(tmp_path, Holder("é" * 300, "h" * 300, 1, 0.0, 1))
    writer.beat()
    beat = read_heartbeat(tmp_path)
    assert beat is not None and beat.name == "é" * 200 and beat.host == "h" * 255
    writer.close()


@pytest.mark.parametrize("damage", ["truncate", "flip", "empty", "magic", "long"])
def test_torn_or_garbled_heartbeat_reads_as_unknown(tmp_path: Path, damage: str) -> None:
    writer = HeartbeatWriter(tmp_path, _holder())
    writer.beat()
    writer.close()
    path = heartbeat_path(tmp_path)
    record = bytearray(path.read_bytes())
    if damage == "truncate":
        record = record[: RECORD_SIZE // 2]
    elif damage == "flip":
        record[30] ^= 0x01
    elif damage == "empty":
        record = bytearray()
    elif damage == "magic":
        record[:4] = b"XXXX"
    else:
        record += b"\0"
    path.write_bytes(bytes(record))
    assert read_heartbeat(tmp_path) is None
    # A new master's first beat makes the file readable again, whatever was there.
    successor = HeartbeatWriter(tmp_path, _holder(name="successor"))
    successor.beat()
    beat = read_heartbeat(tmp_path)
    assert beat is not None and beat.name == "successor" and beat.counter == 1
    successor.close()


def test_a_deposed_writer_does_not_overwrite_its_successor(tmp_path: Path) -> None:
    old = HeartbeatWriter(tmp_path, _holder(name="old", epoch=1))
    old.beat()
    new = HeartbeatWriter(tmp_path, _holder(name="new", epoch=2))
    new.beat()
    with pytest.raises(LockLost, match="broker new"):
        old.beat()
    assert not old.mark_released()
    beat = read_heartbeat(tmp_path)
    assert beat is not None and beat.name == "new" and not beat.released
    new.close()


def test_a_writer_notices_its_heartbeat_file_replaced(tmp_path: Path) -> None:
    writer = HeartbeatWriter(tmp_path, _holder())
    writer.beat()
    (tmp_path / "fresh").write_bytes(b"")
    os.replace(tmp_path / "fresh", writer.path)
    with pytest.raises(LockLost, match="replaced"):
        writer.beat()
    writer.close()


# --- pid_alive ---------------------------------------------------------------------------------


def test_pid_alive_sees_live_reaped_and_zombie_processes() -> None:
    assert pid_alive(os.getpid())
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert pid_alive(child.pid)
        os.kill(child.pid, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while pid_alive(child.pid) and time.monotonic() < deadline:  # a zombie until reaped
            time.sleep(0.01)
        assert not pid_alive(child.pid)
    finally:
        child.kill()
        child.wait(10)
    assert not pid_alive(child.pid)


# --- previous_master_gone, driven deterministically ----------------------------------------------


def test_no_heartbeat_file_means_no_previous_master(tmp_path: Path) -> None:
    assert previous_master_gone(tmp_path, HERE, KEEPALIVE, MARGIN) == "no previous master"


def test_unknown_content_waits_one_period_plus_margin(tmp_path: Path) -> None:
    heartbeat_path(tmp_path).write_bytes(b"garbage")
    fake = _FakeTime()
    reason = previous_master_gone(tmp_path, HERE, 1.0, 0.5, clock=fake.clock, sleep=fake.sleep)
    assert reason == "previous master's heartbeat stale for 1.5 s"
    assert fake.slept == pytest.approx(1.5)


def test_a_longer_recorded_period_lengthens_the_wait(tmp_path: Path) -> None:
    HeartbeatWriter(tmp_path, _holder(host="far"), stale_after=4.0).beat()
    fake = _FakeTime()
    reason = previous_master_gone(tmp_path, "near", 1.0, 0.5, clock=fake.clock, sleep=fake.sleep)
    assert reason == "previous master's heartbeat stale for 4.5 s"


def test_a_pid_that_dies_during_the_wait_ends_it(tmp_path: Path) -> None:
    writer = HeartbeatWriter(tmp_path, Holder("b1", HERE, 4242, 0.0, 1))
    writer.beat()
    fake = _FakeTime()
    alive = {"checks": 0}

    def is_pid_alive(pid: int) -> bool:
        assert pid == 4242
        alive["checks"] += 1
        return alive["checks"] < 3

    reason = previous_master_gone(
        tmp_path, HERE, 10.0, 1.0, clock=fake.clock, sleep=fake.sleep, is_pid_alive=is_pid_alive
    )
    assert reason == "previous master's pid 4242 no longer exists on this host"
    assert fake.slept < 10.0
    writer.close()


def test_the_pid_is_not_checked_for_another_host(tmp_path: Path) -> None:
    HeartbeatWriter(tmp_path, Holder("b1", "other-host", 4242, 0.0, 1)).beat()
    fake = _FakeTime()

    def is_pid_alive(pid: int) -> bool:
        raise AssertionError("pids of another host mean nothing here")

    reason = previous_master_gone(
        tmp_path, HERE, 1.0, 0.5, clock=fake.clock, sleep=fake.sleep, is_pid_alive=is_pid_alive
    )
    assert reason.startswith("previous master's heartbeat stale")


def test_abort_ends_the_wait(tmp_path: Path) -> None:
    HeartbeatWriter(tmp_path, _holder(host="far")).beat()
    abort = threading.Event()
    abort.set()
    with pytest.raises(TakeoverAborted):
        previous_master_gone(tmp_path, "near", 30.0, 1.0, sleep=abort.wait, abort=abort)


# --- previous_master_gone against real processes -----------------------------------------------


def test_a_clean_release_is_gone_at_once(tmp_path: Path) -> None:
    with LockProc(tmp_path, "--beat", "0.05") as old:
        old.expect("ACQUIRED")
        old.send("release-clean")
        old.expect("RELEASED")
    started = time.monotonic()
    assert previous_master_gone(tmp_path, HERE, 10.0, 1.0) == "previous master released cleanly"
    assert time.monotonic() - started < 1.0  # no waiting: the stale rule would take 11 s


def test_a_dead_pid_on_this_host_is_gone_at_once(tmp_path: Path) -> None:
    with LockProc(tmp_path, "--beat", "0.05") as old:
        old.expect("ACQUIRED")
        old.kill()
    started = time.monotonic()
    reason = previous_master_gone(tmp_path, HERE, 10.0, 1.0)
    assert reason == f"previous master's pid {old.pid} no longer exists on this host"
    assert time.monotonic() - started < 1.0


def test_a_dead_master_on_another_host_is_gone_once_its_heartbeat_is_stale(tmp_path: Path) -> None:
    with LockProc(tmp_path, "--beat", "0.05", "--host", "far-away") as old:
        old.expect("ACQUIRED")
        old.kill()
    started = time.monotonic()
    reason = previous_master_gone(tmp_path, HERE, KEEPALIVE, MARGIN)
    took = time.monotonic() - started
    assert reason.startswith("previous master's heartbeat stale for 0.3")
    assert KEEPALIVE + MARGIN <= took < 2.0


def test_a_live_master_keeps_us_waiting_until_it_dies(tmp_path: Path) -> None:
    with LockProc(tmp_path, "--beat", "0.05", "--host", "far-away") as old:
        old.expect("ACQUIRED")
        # Beats every 0.05 s; a wait of 0.5 + 0.25 s tolerates a loaded machine's scheduling gaps.
        gone = _Gone(tmp_path, HERE, keepalive=0.5, margin=0.25)
        time.sleep(1.5)  # twice keep-alive + margin
        assert gone.running(), gone.reason
        killed_at = time.monotonic()
        old.kill()
        reason = gone.join(10)
    assert reason is not None and reason.startswith("previous master's heartbeat stale")
    assert 0.75 - 0.06 <= gone.at - killed_at < 3.0  # its last beat may predate the kill by 0.05 s


def test_a_paused_master_on_this_host_is_gone_once_its_heartbeat_is_stale(tmp_path: Path) -> None:
    with LockProc(tmp_path, "--beat", "0.05") as old:
        old.expect("ACQUIRED")
        os.kill(old.pid, signal.SIGSTOP)
        try:
            started = time.monotonic()
            reason = previous_master_gone(tmp_path, HERE, KEEPALIVE, MARGIN)  # its pid is alive
            assert reason.startswith("previous master's heartbeat stale")
            assert KEEPALIVE + MARGIN <= time.monotonic() - started < 2.0
        finally:
            os.kill(old.pid, signal.SIGCONT)
