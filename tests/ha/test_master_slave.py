"""Shared-directory master/slave with real processes: the lock decides, never two masters."""

from __future__ import annotations

import os
import signal
import time

import pytest

from tests.helpers.cluster import AcceptMonitor, BrokerProc, wait_for_single_master
from tests.helpers.rawstomp import RawStomp

pytestmark = pytest.mark.ha

EXIT_LOCK_LOST = 3


def others(brokers: list[BrokerProc], master: BrokerProc) -> list[BrokerProc]:
    return [b for b in brokers if b is not master]


def test_exactly_one_of_three_accepts(cluster):
    brokers = cluster(3)
    with AcceptMonitor(brokers) as monitor:
        master = wait_for_single_master(brokers, timeout=20)
        for slave in others(brokers, master):
            assert slave.wait_role("slave", 5), slave.log_text()
        time.sleep(1.0)
    assert monitor.violations == []
    assert monitor.samples > 10
    assert [b for b in brokers if b.accepting()] == [master]
    with RawStomp(master.host, master.port) as client:
        assert client.connect().startswith("CONNECTED")
    # Slaves log who holds the lock.
    for slave in others(brokers, master):
        assert f"lock held by broker {master.name}" in slave.log_text()


def test_kill9_of_master_another_takes_over(cluster):
    brokers = cluster(3)
    with AcceptMonitor(brokers) as monitor:
        master = wait_for_single_master(brokers, timeout=20)
        killed_at = time.monotonic()
        master.signal(signal.SIGKILL)
        successor = wait_for_single_master(others(brokers, master), timeout=10)
        took = time.monotonic() - killed_at
        # The restarted old master joins as a slave and stays one.
        master.start()
        assert master.wait_role("slave", 10), master.log_text()
        time.sleep(1.0)
        assert not master.accepting()
        assert successor.accepting()
    assert monitor.violations == []
    assert took < 5.0, f"failover took {took:.2f} s"


def test_sigterm_hands_over_at_once(cluster):
    brokers = cluster(2)
    with AcceptMonitor(brokers) as monitor:
        master = wait_for_single_master(brokers, timeout=20)
        master.signal(signal.SIGTERM)
        assert master.wait_exit(10) == 0, master.log_text()
        successor = wait_for_single_master(others(brokers, master), timeout=10)
    assert monitor.violations == []
    assert "released cleanly" in successor.log_text()


@pytest.mark.parametrize("how", ["deleted", "replaced"])
def test_lock_file_gone_master_stops_within_keepalive(cluster, tmp_path, how):
    brokers = cluster(3)
    with AcceptMonitor(brokers) as monitor:
        master = wait_for_single_master(brokers, timeout=20)
        lock_path = master.data_dir / "lock"
        if how == "deleted":
            os.unlink(lock_path)
        else:
            replacement = master.data_dir / "lock.new"
            replacement.write_text("")
            os.replace(replacement, lock_path)
        broken_at = time.monotonic()
        code = master.wait_exit(5)
        stopped_after = time.monotonic() - broken_at
        assert code == EXIT_LOCK_LOST, master.log_text()
        successor = wait_for_single_master(others(brokers, master), timeout=10)
        time.sleep(0.5)
    assert monitor.violations == [], monitor.violations
    # keep-alive period is 0.3 s in these tests; allow for process exit on a loaded 2-core machine.
    assert stopped_after < 0.3 + 1.5, f"master stopped {stopped_after:.2f} s after losing its lock"
    assert successor.accepting()
    assert "lock_lost" in master.log_text()


def test_paused_master_resumes_deposed_and_receipts_nothing(cluster):
    brokers = cluster(2)
    # A frozen process's listening socket still completes TCP handshakes in the kernel, so here
    # "accepting" means answering CONNECT: the deposed master must never do that once resumed.
    with AcceptMonitor(brokers, level="stomp") as monitor:
        master = wait_for_single_master(brokers, timeout=20)
        slave = others(brokers, master)[0]
        client = RawStomp(master.host, master.port, timeout=2)
        assert client.connect().startswith("CONNECTED")
        master.signal(signal.SIGSTOP)
        try:
            # Sent while the master is frozen: the bytes wait in its socket buffer.
            client.send_frame(
                "SEND",
                {"destination": "/queue/fenced", "persistent": "true", "receipt": "r-1"},
                b"written by a deposed master?",
            )
            os.unlink(master.data_dir / "lock")  # the lock is broken under the paused master
            successor = wait_for_single_master([slave], timeout=10)
        finally:
            master.signal(signal.SIGCONT)
        reply = client.read_frame(3.0)
        client.close()
        assert master.wait_exit(5) == EXIT_LOCK_LOST, master.log_text()
    assert not reply.startswith("RECEIPT"), reply
    assert monitor.violations == []
    # The new master never sees the write the deposed one may have attempted.
    with RawStomp(successor.host, successor.port) as consumer:
        assert consumer.connect().startswith("CONNECTED")
        consumer.send_frame("SUBSCRIBE", {"destination": "/queue/fenced", "id": "s", "ack": "auto"})
        assert consumer.read_frame(1.5) == ""
