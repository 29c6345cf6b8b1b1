"""Takeover with a paged backlog: 20,000 persistent messages, a 4 KiB cursor window, kill -9.

Half the backlog is stored before the slave starts (it gets it through its first recovery of the
index), half while it follows; a few are consumed on the master. After kill -9 of the master the
successor must serve every receipted, unacked message exactly once, in order, flagged
`redelivered`, although almost all of them were never in memory on either broker; neither
broker's memory may grow by as much as the backlog's bodies. On a store that can be followed
(journal, appendlog) the successor must also have taken over warm (the hot standby); the others
take over cold.
"""

from __future__ import annotations

import queue
import signal
import time
from pathlib import Path

import pytest

from stores.registry import can_follow
from tests.helpers.cluster import HOSTS, BrokerProc, free_port, wait_for_single_master
from tests.helpers.paging import BODY_SIZE, body_for, require_cursor_window, window_args
from tests.helpers.stomppy import connect, drain

pytestmark = pytest.mark.ha

BACKLOG = 20_000
CONSUMED = 100
READY = "hot standby ready"
RECEIPT_TIMEOUT = 60.0


def send_pipelined(host: str, port: int, destination: str, bodies: list[str]) -> None:
    """Send every body persistently with a receipt, then wait for all of them (not one by one)."""
    conn, events = connect(host, port)
    try:
        for i, body in enumerate(bodies):
            conn.send(destination, body, headers={"persistent": "true"}, receipt=f"r{i}")
        for i in range(len(bodies)):
            assert events.wait_receipt(f"r{i}", RECEIPT_TIMEOUT), f"no RECEIPT for message {i}"
    finally:
        conn.disconnect()


def receive_all(host: str, port: int, destination: str, count: int, idle: float = 10.0) -> list:
    """Auto-acked frames until `count` came or none for `idle` seconds (order and content matter)."""
    conn, events = connect(host, port)
    conn.subscribe(destination, id="all", ack="auto")
    frames = []
    try:
        while len(frames) < count:
            try:
                frames.append(events.messages.get(timeout=idle))
            except queue.Empty:
                break
        try:  # nothing more may come
            frames.append(events.messages.get(timeout=1.0))
        except queue.Empty:
            pass
    finally:
        conn.disconnect()
    return frames


def describe(got: list[str], expected: list[str]) -> str:
    missing = sorted(set(expected) - set(got))
    extra = sorted(set(got) - set(expected))
    wrong = next((i for i, (a, b) in enumerate(zip(got, expected, strict=False)) if a != b), None)
    return (f"{len(got)} delivered, {len(expected)} expected; {len(missing)} missing (first "
            f"{[m[:6] for m in missing[:5]]}), {len(extra)} extra; first out of place at {wrong}")


def rss(broker: BrokerProc) -> int:
    """The process's resident memory in bytes."""
    assert broker.proc is not None
    status = Path(f"/proc/{broker.proc.pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:"))) * 1024


def wait_for_line(broker: BrokerProc, text: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in broker.log_text():
            return True
        time.sleep(0.05)
    return False


@pytest.mark.timeout(300)
@pytest.mark.parametrize("store", ["journal", "leveldb", "appendlog"])
def test_takeover_serves_a_paged_backlog_in_order(tmp_path, store):
    require_cursor_window()
    port = free_port()
    first, second = (BrokerProc(f"b{i + 1}", HOSTS[i], port, tmp_path / "shared", store=store,
                                extra=tuple(window_args())) for i in range(2))
    try:
        first.start()
        assert wait_for_single_master([first], timeout=20) is first
        empty = rss(first)
        bodies = [body_for(f"m{i:05d}") for i in range(BACKLOG)]
        half = BACKLOG // 2
        send_pipelined(first.host, port, "/queue/paged", bodies[:half])
        second.start()  # the slave: its first look at the store finds a deep queue
        if can_follow(store):
            assert wait_for_line(second, READY, timeout=60), second.log_text()
        send_pipelined(first.host, port, "/queue/paged", bodies[half:])  # while the slave follows
        # Memory does not track the backlog: 20 MB of bodies, almost all only in the store. Without
        # the cursor the master grew by about 42 MB here and a journal slave by as much.
        for broker in (first, second):
            grown = rss(broker) - empty
            assert grown < BACKLOG * BODY_SIZE, f"{broker.name} grew by {grown >> 20} MiB for the backlog"
        consumed = drain(first.host, port, "/queue/paged", idle=2.0, limit=CONSUMED)
        assert [f.body for f in consumed] == bodies[:CONSUMED]
        first.signal(signal.SIGKILL)
        assert wait_for_single_master([second], timeout=30) is second
        if can_follow(store):
            assert "hot standby: adopted the warm broker" in second.log_text(), second.log_text()
        frames = receive_all(second.host, port, "/queue/paged", BACKLOG - CONSUMED)
        got = [f.body for f in frames]
        expected = bodies[CONSUMED:]
        assert got == expected, describe(got, expected)
        assert all(f.headers.get("redelivered") == "true" for f in frames)
    finally:
        for broker in (first, second):
            broker.stop()
