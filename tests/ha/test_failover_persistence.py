"""Receipted persistent messages survive kill -9 of the master, on every store."""

from __future__ import annotations

import signal

import pytest

from tests.helpers.cluster import wait_for_single_master
from tests.helpers.stomppy import drain, send_receipted

pytestmark = pytest.mark.ha


@pytest.mark.parametrize("store", ["journal", "leveldb", "appendlog"])
def test_receipted_messages_survive_kill9(cluster, store):
    brokers = cluster(2, store=store)
    master = wait_for_single_master(brokers, timeout=20)
    bodies = [f"{store}-{i}" for i in range(200)]
    receipted = send_receipted(master.host, master.port, "/queue/orders", bodies)
    assert receipted == bodies
    # Consume a few so the survivors are exactly the unacked ones.
    consumed = drain(master.host, master.port, "/queue/orders", idle=1.0, limit=50)
    assert [f.body for f in consumed] == bodies[:50]
    master.signal(signal.SIGKILL)
    successor = wait_for_single_master([b for b in brokers if b is not master], timeout=15)
    frames = drain(successor.host, successor.port, "/queue/orders")
    got = [f.body for f in frames]
    assert got == bodies[50:], f"missing {sorted(set(bodies[50:]) - set(got))[:5]}"
    assert all(f.headers.get("redelivered") == "true" for f in frames)
