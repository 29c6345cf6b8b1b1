"""Lifecycle options and refusals of `batonmq start`, with real processes."""

from __future__ import annotations

import os
import signal
import time

import pytest

from tests.helpers.cluster import BrokerProc, free_port, wait_for_single_master
from tests.helpers.stomppy import send_receipted

pytestmark = pytest.mark.ha

EXIT_STORE = 4
EXIT_FORCED = 130


def test_lock_lost_with_option_slave_goes_back_to_waiting(cluster):
    brokers = cluster(2, extra=("--on-lock-lost", "slave"))
    master = wait_for_single_master(brokers, timeout=20)
    os.unlink(master.data_dir / "lock")
    successor = wait_for_single_master([b for b in brokers if b is not master], timeout=10)
    # The deposed master did not exit: it waits as a slave on the new lock file.
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and "role lock_lost -> slave" not in master.log_text():
        time.sleep(0.05)
    assert "role lock_lost -> slave" in master.log_text(), master.log_text()
    assert master.proc is not None and master.proc.poll() is None
    assert not master.accepting()
    assert f"lock held by broker {successor.name}" in master.log_text()


def test_second_signal_forces_exit(tmp_path):
    port = free_port(("127.0.0.2",))
    broker = BrokerProc("b1", "127.0.0.2", port, tmp_path / "data").start()
    try:
        wait_for_single_master([broker], timeout=20)
        # Frozen, it receives both signals before it can begin the graceful stop (two different
        # signals, since a repeated one would merge while pending).
        broker.signal(signal.SIGSTOP)
        broker.signal(signal.SIGTERM)
        broker.signal(signal.SIGINT)
        broker.signal(signal.SIGCONT)
        assert broker.wait_exit(10) == EXIT_FORCED, broker.log_text()
        assert "second signal" in broker.log_text()
    finally:
        broker.stop()


def test_directory_of_another_store_type_is_refused_and_left_alone(tmp_path):
    port = free_port(("127.0.0.2",))
    data = tmp_path / "data"
    first = BrokerProc("b1", "127.0.0.2", port, data, store="leveldb").start()
    try:
        master = wait_for_single_master([first], timeout=20)
        assert send_receipted(master.host, master.port, "/queue/keep", ["one", "two"]) == ["one", "two"]
        first.signal(signal.SIGTERM)
        assert first.wait_exit(10) == 0
    finally:
        first.stop()
    before = store_files(data)
    second = BrokerProc("b2", "127.0.0.2", port, data, store="journal").start()
    try:
        assert second.wait_exit(20) == EXIT_STORE, second.log_text()
    finally:
        second.stop()
    assert "'leveldb'" in second.log_text() and "'journal'" in second.log_text()
    assert store_files(data) == before
    assert not (data / "journal").exists()


def store_files(data) -> dict[str, bytes]:
    """Every file of the store and its marker, with content (the lock's own files excluded)."""
    lock_files = ("lock", "heartbeat", "epoch")
    return {
        str(p.relative_to(data)): p.read_bytes()
        for p in sorted(data.rglob("*"))
        if p.is_file() and p.name not in lock_files
    }


def test_corrupted_journal_refuses_to_start_naming_file_and_offset(tmp_path):
    port = free_port(("127.0.0.2",))
    data = tmp_path / "data"
    first = BrokerProc("b1", "127.0.0.2", port, data).start()
    try:
        master = wait_for_single_master([first], timeout=20)
        bodies = [f"m{i}" * 50 for i in range(40)]
        assert send_receipted(master.host, master.port, "/queue/keep", bodies) == bodies
        first.signal(signal.SIGKILL)
        first.wait_exit(10)
    finally:
        first.stop()
    journal = sorted((data / "journal").glob("db-*.log"))[-1]
    raw = bytearray(journal.read_bytes())
    middle = len(raw) // 2
    raw[middle] ^= 0xFF  # damage a record that valid records follow: not a torn tail
    journal.write_bytes(bytes(raw))
    checkpoints = list((data / "journal").glob("checkpoint-*"))
    for checkpoint in checkpoints:  # force replay of the damaged file
        checkpoint.unlink()
    second = BrokerProc("b2", "127.0.0.2", port, data).start()
    try:
        assert second.wait_exit(20) == EXIT_STORE, second.log_text()
    finally:
        second.stop()
    assert f"{journal.name}@" in second.log_text(), second.log_text()
