"""Every registered lock backend keeps the LockBackend contract, driven through the Protocol only.

The shared-file backend's parts have their own tests (test_lock, test_fencing, test_takeover);
this suite is what a second backend (a database lease) must pass unchanged.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path

import pytest

from stores.lock import LOCK_BACKENDS, Holder, LockBackend, LockLost, create_lock

HOST = socket.gethostname()


@pytest.fixture(params=sorted(LOCK_BACKENDS))
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def begin(lock: LockBackend, name: str, stale_after: float = 1.0) -> Holder:
    assert lock.try_acquire()
    epoch = lock.bump_epoch()
    holder = Holder(name, HOST, os.getpid(), time.time(), epoch)
    lock.publish(holder)
    lock.start_beating(holder, stale_after)
    return holder


def test_backends_satisfy_the_protocol(kind: str, tmp_path: Path) -> None:
    assert isinstance(create_lock(kind, tmp_path), LockBackend)
    with pytest.raises(KeyError, match="known: "):
        create_lock("no-such-backend", tmp_path)


def test_one_holder_at_a_time_and_its_identity_is_visible(kind: str, tmp_path: Path) -> None:
    first, second = create_lock(kind, tmp_path), create_lock(kind, tmp_path)
    holder = begin(first, "b1")
    try:
        assert not second.try_acquire()
        assert second.holder() == holder
        assert second.is_held() is True
        first.check()
        first.fence().check()
    finally:
        first.end_term(clean=True)
        first.release()
    assert second.wait_acquire(2.0)
    second.release()


def test_each_term_bumps_the_epoch_and_fences_the_one_before(kind: str, tmp_path: Path) -> None:
    old = create_lock(kind, tmp_path)
    begin(old, "old")
    fence = old.fence()
    old.release()  # deposed without knowing it: its fence object lives on
    new = create_lock(kind, tmp_path)
    holder = begin(new, "new")
    try:
        assert holder.epoch == 2
        with pytest.raises(LockLost):
            fence.check()
        with pytest.raises(LockLost):
            old.check()
    finally:
        new.end_term(clean=True)
        new.release()


def test_a_clean_end_lets_a_successor_in_at_once(kind: str, tmp_path: Path) -> None:
    first = create_lock(kind, tmp_path)
    begin(first, "b1", stale_after=30.0)
    first.end_term(clean=True)
    first.release()
    second = create_lock(kind, tmp_path)
    assert second.try_acquire()
    second.bump_epoch()
    started = time.monotonic()
    reason = second.previous_master_gone(HOST, 30.0, 0.1, threading.Event())
    assert "released cleanly" in reason and time.monotonic() - started < 5
    second.release()


def test_a_silent_holder_is_waited_out_for_its_promise(kind: str, tmp_path: Path) -> None:
    first = create_lock(kind, tmp_path)
    begin(first, "b1", stale_after=0.6)
    first.release()  # its lock is gone but it never said so, and "its" pid (ours) is alive
    second = create_lock(kind, tmp_path)
    assert second.try_acquire()
    second.bump_epoch()
    started = time.monotonic()
    reason = second.previous_master_gone("another-host", 0.2, 0.1, threading.Event())
    waited = time.monotonic() - started
    assert "stale" in reason
    assert waited >= 0.6 + 0.1  # the recorded promise, not our shorter one
    second.release()
