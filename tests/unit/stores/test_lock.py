"""stores.lock with real descriptors, threads and separate OS processes (design §2)."""

from __future__ import annotations

import os
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from stores.lock.directory import MAX_IDENTITY, DirectoryLock, read_holder
from stores.lock.identity import Holder, LockLost
from tests.helpers.lockproc import LockProc


def _holder(epoch: int = 1, name: str = "b1") -> Holder:
    return Holder(name, "host-a", os.getpid(), time.time(), epoch)


class _Acquirer:
    """Runs lock.wait_acquire(timeout) in a thread and records when it returned."""

    def __init__(self, lock: DirectoryLock, timeout: float) -> None:
        self.result: bool | None = None
        self.at = 0.0
        self._thread = threading.Thread(target=self._run, args=(lock, timeout))
        self._thread.start()

    def _run(self, lock: DirectoryLock, timeout: float) -> None:
        self.result = lock.wait_acquire(timeout)
        self.at = time.monotonic()

    def join(self, timeout: float) -> bool | None:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "wait_acquire overran its own timeout"
        return self.result


def test_second_process_cannot_take_the_lock_while_the_first_holds_it(tmp_path: Path) -> None:
    mine = DirectoryLock(tmp_path)
    with LockProc(tmp_path, "--name", "first") as first:
        first.expect("ACQUIRED")
        with LockProc(tmp_path, "--once") as second:
            second.expect("BUSY")
            assert second.proc.wait(10) == 3
        assert not mine.try_acquire()
        assert not mine.held and mine.fileno == -1
        first.send("release")
        first.expect("RELEASED")
    assert mine.try_acquire()
    with LockProc(tmp_path, "--once") as third:
        third.expect("BUSY")
    mine.release()


def test_two_descriptors_in_one_process_exclude_each_other(tmp_path: Path) -> None:
    a, b = DirectoryLock(tmp_path), DirectoryLock(tmp_path)
    assert a.mode == "ofd"
    assert a.try_acquire() and a.held
    assert not b.try_acquire()
    waiter = _Acquirer(b, timeout=10)
    time.sleep(0.2)
    assert waiter.result is None
    released_at = time.monotonic()
    a.release()
    assert waiter.join(10) is True
    assert waiter.at - released_at < 1.0
    assert not a.try_acquire()
    b.release()


def test_kill_9_of_the_holder_lets_a_waiter_in_promptly(tmp_path: Path) -> None:
    mine = DirectoryLock(tmp_path)
    with LockProc(tmp_path, "--name", "doomed") as holder:
        holder.expect("ACQUIRED")
        waiter = _Acquirer(mine, timeout=20)
        time.sleep(0.2)
        assert waiter.result is None
        killed_at = time.monotonic()
        holder.kill()
        assert waiter.join(25) is True
    took = waiter.at - killed_at
    print(f"kill -9 of the holder -> waiter holds the lock: {took * 1000:.1f} ms")
    assert took < 5.0
    mine.release()


def test_wait_acquire_wakes_at_once_when_another_process_releases(tmp_path: Path) -> None:
    mine = DirectoryLock(tmp_path)
    with LockProc(tmp_path) as holder:
        holder.expect("ACQUIRED")
        waiter = _Acquirer(mine, timeout=20)
        time.sleep(0.2)
        asked_at = time.monotonic()
        holder.send("release")
        assert waiter.join(25) is True
        holder.expect("RELEASED")
    took = waiter.at - asked_at
    print(f"release in another process -> waiter holds the lock: {took * 1000:.1f} ms")
    assert took < 2.0
    mine.release()


def test_a_timed_out_wait_is_picked_up_by_the_next_call(tmp_path: Path) -> None:
    a, b, c = DirectoryLock(tmp_path), DirectoryLock(tmp_path), DirectoryLock(tmp_path)
    assert a.try_acquire()
    started = time.monotonic()
    assert not b.wait_acquire(0.2)
    assert 0.15 < time.monotonic() - started < 2.0
    a.release()
    # b's waiter thread now owns the lock on b's behalf: nobody else gets it ...
    deadline = time.monotonic() + 5
    while c.try_acquire() and time.monotonic() < deadline:
        c.release()  # the waiter had not got there yet
        time.sleep(0.01)
    assert not c.held
    # ... and b's next call adopts it at once. Not with timeout 0: c can fail as soon as the kernel
    # grants the waiter's lock, a moment before the waiter thread hands its descriptor over.
    started = time.monotonic()
    assert b.wait_acquire(1.0)
    assert time.monotonic() - started < 0.5
    assert b.held
    b.release()
    assert c.try_acquire()
    c.release()


def test_an_abandoned_waiter_hands_the_lock_back(tmp_path: Path) -> None:
    a, b = DirectoryLock(tmp_path), DirectoryLock(tmp_path)
    assert a.try_acquire()
    assert not b.wait_acquire(0.1)
    b.release()  # give up waiting; the waiter thread is still blocked in F_OFD_SETLKW
    a.release()  # the waiter now gets the lock, sees nobody wants it, and lets go
    with LockProc(tmp_path, "--wait", "5", "--once") as other:
        other.expect("ACQUIRED")
        assert other.proc.wait(10) == 0
    assert not b.held


def test_release_interrupts_an_in_flight_wait(tmp_path: Path) -> None:
    a, b = DirectoryLock(tmp_path), DirectoryLock(tmp_path)
    assert a.try_acquire()
    waiter = _Acquirer(b, timeout=20)
    time.sleep(0.2)
    b.release()
    assert waiter.join(5) is False
    a.release()
    assert not b.held


def test_try_acquire_creates_the_directory_and_release_is_idempotent(tmp_path: Path) -> None:
    lock = DirectoryLock(tmp_path / "new" / "data")
    assert lock.try_acquire()
    assert lock.try_acquire()  # already ours
    assert lock.path.exists() and lock.fileno >= 0
    lock.release()
    lock.release()
    assert not lock.held and lock.identity is None
    assert lock.try_acquire()  # reusable after release
    lock.release()


def test_verify_passes_while_we_hold_the_lock(tmp_path: Path) -> None:
    lock = DirectoryLock(tmp_path)
    assert lock.try_acquire()
    lock.verify()  # before publishing: nothing to compare the content with yet
    lock.publish(_holder())
    lock.verify()
    lock.publish(_holder(epoch=2))  # a shorter or longer identity replaces the old one entirely
    lock.verify()
    assert lock.current_holder() == Holder.from_json(lock.path.read_bytes())
    lock.release()


def test_verify_detects_a_deleted_lock_file(tmp_path: Path) -> None:
    lock = DirectoryLock(tmp_path)
    assert lock.try_acquire()
    lock.publish(_holder())
    lock.path.unlink()
    with pytest.raises(LockLost, match="deleted"):
        lock.verify()
    lock.release()


def test_verify_detects_a_lock_file_replaced_by_rename(tmp_path: Path) -> None:
    lock = DirectoryLock(tmp_path)
    assert lock.try_acquire()
    holder = _holder()
    lock.publish(holder)
    impostor = tmp_path / "impostor"
    impostor.write_text(holder.to_json())  # even the same content: it is another file
    os.replace(impostor, lock.path)
    with pytest.raises(LockLost, match="replaced"):
        lock.verify()
    lock.release()


def test_verify_detects_another_identity_in_the_file(tmp_path: Path) -> None:
    lock = DirectoryLock(tmp_path)
    assert lock.try_acquire()
    lock.publish(_holder(name="me"))
    with open(lock.path, "r+b") as f:  # same inode, content overwritten (an NFS lock broken under us)
        f.write(_holder(name="someone-else").to_json().encode())
        f.truncate()
    with pytest.raises(LockLost, match="someone-else"):
        lock.verify()
    lock.release()
    with pytest.raises(LockLost, match="not held"):
        lock.verify()
    with pytest.raises(LockLost):
        lock.publish(_holder())


def test_verify_in_another_process_detects_replacement(tmp_path: Path) -> None:
    with LockProc(tmp_path) as holder:
        holder.expect("ACQUIRED")
        holder.send("verify")
        holder.expect("OK")
        replacement = tmp_path / "replacement"
        replacement.write_bytes(b"")
        os.replace(replacement, tmp_path / "lock")
        holder.send("verify")
        assert "replaced" in holder.expect("LOST")
        # The replacement is free: a second master could lock it. The fence stops the first one.
        mine = DirectoryLock(tmp_path)
        assert mine.try_acquire()
        mine.release()


def test_read_holder_shows_the_identity_written_by_another_process(tmp_path: Path) -> None:
    assert read_holder(tmp_path) is None
    with LockProc(tmp_path, "--name", "other-broker", "--bump") as holder:
        written = Holder.from_json(holder.expect("ACQUIRED"))
        found = read_holder(tmp_path)
        assert found is not None and found == written
        assert found.pid == holder.pid and found.epoch == 1
        assert found.describe().startswith(
            f"broker other-broker on host {found.host} pid {holder.pid} epoch 1"
        )
        # Reading did not disturb the holder's lock.
        mine = DirectoryLock(tmp_path)
        assert not mine.try_acquire()
        assert mine.current_holder() == written


def test_holder_json_round_trip_and_describe() -> None:
    started = datetime(2026, 11, 25, 14, 0, 0, tzinfo=UTC).timestamp()
    holder = Holder("b1", "h", 123, started, 7)
    assert Holder.from_json(holder.to_json()) == holder
    assert Holder.from_json(holder.to_json().encode()) == holder
    assert holder.describe() == "broker b1 on host h pid 123 epoch 7 since 2026-11-25T14:00:00Z"


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"{",
        b"[]",
        b"null",
        b'{"name":"b","host":"h","pid":1,"started":1.0}',  # epoch missing
        b'{"name":"b","host":"h","pid":1,"started":1.0,"epoch":1,"extra":0}',
        b'{"name":"","host":"h","pid":1,"started":1.0,"epoch":1}',
        b'{"name":"b","host":"h","pid":true,"started":1.0,"epoch":1}',
        b'{"name":"b","host":"h","pid":0,"started":1.0,"epoch":1}',
        b'{"name":"b","host":"h","pid":1,"started":1e308,"epoch":1}',
        b'{"name":"b","host":"h","pid":1,"started":NaN,"epoch":1}',
        b'{"name":"b","host":"h","pid":1,"started":1.0,"epoch":-1}',
        b'{"name":"b","host":"h","pid":1,"started":1.0,"epoch":"1"}',
        b'{"name":"b","host":"h","pid":1,"st',  # torn write
        b"\xff\xfe\x00garbage",
        b"[" * 3000 + b"]" * 3000,
        b'{"name":"' + b"x" * MAX_IDENTITY + b'","host":"h","pid":1,"started":1.0,"epoch":1}',
    ],
)
def test_malformed_identity_reads_as_none(tmp_path: Path, content: bytes) -> None:
    assert Holder.from_json(content) is None
    (tmp_path / "lock").write_bytes(content)
    assert read_holder(tmp_path) is None


def test_classic_lock_in_another_process_excludes_us(tmp_path: Path) -> None:
    mine = DirectoryLock(tmp_path)
    with LockProc(tmp_path, "--classic") as holder:
        holder.expect("ACQUIRED")
        assert not mine.try_acquire()  # OFD and classic locks conflict with each other
        holder.send("release")
        holder.expect("RELEASED")
    assert mine.try_acquire()
    mine.release()


def test_classic_fallback_never_drops_its_own_lock(tmp_path: Path) -> None:
    a, b = DirectoryLock(tmp_path, ofd=False), DirectoryLock(tmp_path, ofd=False)
    assert a.mode == "classic"
    assert a.try_acquire()
    a.publish(_holder(name="classic"))
    # Classic locks do not exclude their own process: the module refuses a second holder here,
    # and neither that refusal nor read_holder opens-and-closes the file (which would drop a's lock).
    assert not b.try_acquire()
    assert not b.wait_acquire(0.2)
    found = read_holder(tmp_path)
    assert found is not None and found.name == "classic"
    with LockProc(tmp_path, "--once") as other:
        other.expect("BUSY")
    a.verify()
    a.release()
    assert b.try_acquire()
    b.release()
