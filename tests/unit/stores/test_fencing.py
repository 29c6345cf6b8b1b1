"""The fencing epoch and LockFence (design §2, docs/lock-protocol.md "The fencing rule")."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from stores.base import StoreCorrupted
from stores.lock.directory import DirectoryLock
from stores.lock.fencing import LockFence, bump_epoch, epoch_path, read_epoch
from stores.lock.identity import LockLost
from tests.helpers.lockproc import LockProc


@pytest.fixture
def lock(tmp_path: Path):
    lock = DirectoryLock(tmp_path)
    assert lock.try_acquire()
    yield lock
    lock.release()


def test_epoch_starts_at_zero_and_bumps_are_monotonic(tmp_path: Path) -> None:
    assert read_epoch(tmp_path) == 0
    assert [bump_epoch(tmp_path) for _ in range(3)] == [1, 2, 3]
    assert read_epoch(tmp_path) == 3
    assert epoch_path(tmp_path).read_bytes() == b"3\n"
    assert not (tmp_path / "epoch.tmp").exists()


def test_a_bump_by_another_process_survives_its_kill_9(tmp_path: Path) -> None:
    bump_epoch(tmp_path)
    with LockProc(tmp_path, "--bump") as holder:
        assert '"epoch":2' in holder.expect("ACQUIRED")
        holder.kill()
    assert read_epoch(tmp_path) == 2
    lock = DirectoryLock(tmp_path)
    assert lock.try_acquire()
    assert bump_epoch(tmp_path) == 3
    lock.release()


@pytest.mark.parametrize(
    "content", [b"", b"\n", b"abc\n", b"-1\n", b"7", b"1 \n", b"\xd9\xa3\n", b"9" * 40 + b"\n"]
)
def test_a_malformed_epoch_file_is_corruption_not_zero(tmp_path: Path, content: bytes) -> None:
    epoch_path(tmp_path).write_bytes(content)
    with pytest.raises(StoreCorrupted, match="epoch"):
        read_epoch(tmp_path)
    with pytest.raises(StoreCorrupted):
        bump_epoch(tmp_path)


def test_fence_passes_while_we_are_the_master(tmp_path: Path, lock: DirectoryLock) -> None:
    epoch = bump_epoch(tmp_path)
    fence = LockFence(lock, epoch)
    assert fence.epoch == epoch
    for _ in range(3):
        fence.check()


def test_fence_trips_when_a_newer_master_bumps_the_epoch(tmp_path: Path, lock: DirectoryLock) -> None:
    fence = LockFence(lock, bump_epoch(tmp_path))
    bump_epoch(tmp_path)  # e.g. our NFSv4 lease expired and a master on another host bumped it
    with pytest.raises(LockLost, match="epoch is now 2, ours is 1"):
        fence.check()


def test_fence_trips_when_another_process_takes_over_a_replaced_lock_file(
    tmp_path: Path, lock: DirectoryLock
) -> None:
    fence = LockFence(lock, bump_epoch(tmp_path))
    lock.path.unlink()  # the operator's mistake ActiveMQ warns about
    with LockProc(tmp_path, "--bump", "--name", "successor") as successor:
        assert '"epoch":2' in successor.expect("ACQUIRED")
        with pytest.raises(LockLost, match="replaced"):
            fence.check()
        with pytest.raises(LockLost, match="replaced"):
            lock.verify()
        assert read_epoch(tmp_path) == 2


def test_fence_trips_after_rename_over_the_lock_file(tmp_path: Path, lock: DirectoryLock) -> None:
    fence = LockFence(lock, bump_epoch(tmp_path))
    other = tmp_path / "other"
    other.write_bytes(b"")
    os.replace(other, lock.path)
    with pytest.raises(LockLost, match="replaced"):
        fence.check()


def test_fence_trips_after_deletion_and_release(tmp_path: Path) -> None:
    lock = DirectoryLock(tmp_path)
    assert lock.try_acquire()
    fence = LockFence(lock, bump_epoch(tmp_path))
    epoch_path(tmp_path).unlink()
    with pytest.raises(LockLost, match="epoch"):
        fence.check()
    lock.release()
    with pytest.raises(LockLost, match="released"):
        fence.check()
    with pytest.raises(LockLost):
        LockFence(lock, 1)


def test_a_paused_master_learns_it_was_deposed_when_it_resumes(tmp_path: Path) -> None:
    with LockProc(tmp_path, "--bump", "--name", "paused") as old:
        old.expect("ACQUIRED")
        os.kill(old.pid, signal.SIGSTOP)
        try:
            # While it is stopped its lock file is replaced and a new master takes over.
            (tmp_path / "lock").unlink()
            new = DirectoryLock(tmp_path)
            assert new.try_acquire()
            assert bump_epoch(tmp_path) == 2
        finally:
            os.kill(old.pid, signal.SIGCONT)
        old.send("verify")
        assert "replaced" in old.expect("LOST")  # the path now names the new master's file
        new.release()


def test_fence_check_is_cheap(tmp_path: Path, lock: DirectoryLock) -> None:
    fence = LockFence(lock, bump_epoch(tmp_path))
    calls = 2000
    started = time.perf_counter()
    for _ in range(calls):
        fence.check()
    per_call_us = (time.perf_counter() - started) / calls * 1e6
    print(f"LockFence.check: {per_call_us:.1f} us per call")
    assert per_call_us < 1000  # generous: a stat and a 32-byte read, once per group commit
