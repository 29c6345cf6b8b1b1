"""The temporary store with a real broker process (docs/paging.md, "The temporary store"): with
limits.non_persistent = "spill", non-persistent messages beyond a queue's memory window go to files
under <data>/tmp/<broker name>/, come back in order, and the files go once they are consumed; at
limits.temp_usage the producer is held, then refused with an ERROR naming it; a STOMP browser
sees the spilled messages. A durable topic subscription spills as a queue does, and its files go
with it when it is unsubscribed. A temporary queue spills its persistent messages too (the store
never holds them): they come back in order, still `persistent:true`, and its files go with it when
its connection ends.

Brokers are started as in test_memory_budget.py (a TOML file of limits, /metrics scraped); the
producer is a raw socket, the consumer stomp.py.
"""

from __future__ import annotations

import os
import re
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.helpers.cluster import BrokerProc
from tests.helpers.metricsbroker import scrape
from tests.helpers.rawstomp import RawStomp
from tests.helpers.stomppy import Recorder, connect
from tests.integration.test_memory_budget import HOST, SLOW, error_message, fill, metric, start_broker

MiB = 1024 * 1024
BODY = 64 * 1024
COUNT = 1600  # 100 MiB of bodies, 25 times the destination's 4 MiB share


def rss(proc: BrokerProc) -> int:
    assert proc.proc is not None
    status = Path(f"/proc/{proc.proc.pid}/status").read_text()
    kib = next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:"))
    return int(kib) * 1024


def temp_files(tmp_path: Path) -> list[Path]:
    return sorted((tmp_path / "data" / "tmp" / "mem").glob("*.tmp"))


def written(tmp_path: Path) -> int:
    return sum(f.stat().st_size for f in temp_files(tmp_path))


def body(i: int) -> bytes:
    return f"{i:08d}".encode() + b"s" * (BODY - 8)


def test_spilled_messages_leave_memory_bounded_and_come_back_in_order(tmp_path: Path) -> None:
    proc = start_broker(tmp_path, "memory_budget = '64mb'\ndestination_memory_limit = '4mb'\n"
                                  "producer_flow_control_timeout = 3.0\nnon_persistent = 'spill'")
    try:
        before = rss(proc)
        peak = before
        with RawStomp(HOST, proc.port, timeout=SLOW) as producer:
            assert producer.connect().startswith("CONNECTED")
            for i in range(COUNT):  # a receipt every 100: the producer is never held for long
                headers = {"destination": "/queue/spill"}
                if i % 100 == 99:
                    headers["receipt"] = f"r{i}"
                producer.send_frame("SEND", headers, body(i))
                if "receipt" in headers:
                    reply = producer.read_frame(SLOW)
                    assert reply.startswith("RECEIPT"), reply[:500]
                    peak = max(peak, rss(proc))
        assert metric(proc, 'batonmq_destination_depth{destination="/queue/spill"}') == COUNT
        spilled = metric(proc, 'batonmq_destination_spilled{destination="/queue/spill"}')
        assert spilled >= COUNT - 4 * MiB // BODY
        on_disk = metric(proc, "batonmq_temp_store_bytes")
        assert on_disk >= spilled * BODY
        deadline = time.monotonic() + 10  # a RECEIPT does not wait for the temporary store's write
        while written(tmp_path) < on_disk and time.monotonic() < deadline:
            time.sleep(0.05)
        assert written(tmp_path) == on_disk
        # 100 MiB went through (all in memory, RSS grows by ~100 MiB); what stays is bounded by the
        # budget (frames being read, the share) and the writes under way, 8 MiB.
        grew = peak - before
        assert grew < 64 * MiB, f"RSS grew by {grew / MiB:.0f} MiB (from {before / MiB:.0f} MiB)"

        conn, recorder = connect(HOST, proc.port)
        try:
            conn.subscribe("/queue/spill", id="1", ack="auto")
            deadline = time.monotonic() + 120
            got = []
            while len(got) < COUNT and time.monotonic() < deadline:
                frame = recorder.messages.get(timeout=SLOW)
                got.append(int(frame.body[:8]))
            assert got == list(range(COUNT))
            assert recorder.errors == []
        finally:
            conn.disconnect()
        deadline = time.monotonic() + 10  # segment deletions run in the store's thread, after the reads
        while temp_files(tmp_path) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert temp_files(tmp_path) == []
        assert metric(proc, "batonmq_temp_store_bytes") == 0
    finally:
        proc.stop()
    assert not (tmp_path / "data" / "tmp" / "mem").exists()  # removed at a graceful stop too


def test_spilled_messages_do_not_survive_a_kill_and_restart_and_their_files_are_wiped(tmp_path: Path) -> None:
    proc = start_broker(tmp_path, "memory_budget = '64mb'\ndestination_memory_limit = '1mb'\n"
                                  "non_persistent = 'spill'")
    try:
        with RawStomp(HOST, proc.port, timeout=SLOW) as producer:
            assert producer.connect().startswith("CONNECTED")
            producer.send_frame("SEND", {"destination": "/queue/gone", "persistent": "true",
                                         "receipt": "kept"}, b"persistent")
            assert producer.read_frame(SLOW).startswith("RECEIPT")
        spill_some(proc, tmp_path, "/queue/gone")
        proc.signal(signal.SIGKILL)  # no graceful stop: the files stay behind
        assert proc.wait_exit(10) is not None
        assert temp_files(tmp_path)
        proc.start()
        assert proc.wait_role("master", 20), proc.log_text()
        assert temp_files(tmp_path) == []  # wiped by the new master before it served anyone
        conn, recorder = connect(HOST, proc.port)
        try:
            conn.subscribe("/queue/gone", id="1", ack="auto")
            first = recorder.messages.get(timeout=SLOW)
            assert first.body == "persistent"
            time.sleep(1.0)
            assert recorder.messages.empty()  # the non-persistent ones died with their broker
        finally:
            conn.disconnect()
    finally:
        proc.stop()


def spill_some(proc: BrokerProc, tmp_path: Path, destination: str) -> None:
    """Send 100 non-persistent messages past a 1 MiB share and wait until most are in files."""
    with RawStomp(HOST, proc.port, timeout=SLOW) as producer:
        assert producer.connect().startswith("CONNECTED")
        for i in range(100):
            producer.send_frame("SEND", {"destination": destination}, body(i))
        producer.send_frame("SEND", {"destination": destination, "receipt": "last"}, body(100))
        assert producer.read_frame(SLOW).startswith("RECEIPT")
    deadline = time.monotonic() + 10
    while written(tmp_path) < 80 * BODY and time.monotonic() < deadline:
        time.sleep(0.05)
    assert written(tmp_path) >= 80 * BODY  # all but the 1 MiB share


def test_a_stomp_browser_gets_the_spilled_messages_in_order_then_the_end_marker(tmp_path: Path) -> None:
    proc = start_broker(tmp_path, "memory_budget = '64mb'\ndestination_memory_limit = '1mb'\n"
                                  "non_persistent = 'spill'")
    try:
        spill_some(proc, tmp_path, "/queue/look")
        assert metric(proc, 'batonmq_destination_spilled{destination="/queue/look"}') >= 80
        conn, recorder = connect(HOST, proc.port)
        try:
            conn.subscribe("/queue/look", id="b", ack="auto", headers={"browser": "true"})
            frames = [recorder.messages.get(timeout=SLOW) for _ in range(102)]
            assert [int(f.body[:8]) for f in frames[:101]] == list(range(101))
            assert frames[101].headers.get("browser") == "end" and frames[101].body == ""
            assert recorder.errors == []
        finally:
            conn.disconnect()
        assert metric(proc, 'batonmq_destination_depth{destination="/queue/look"}') == 101  # none taken
    finally:
        proc.stop()


def test_a_master_that_loses_its_lock_leaves_its_files_to_the_next_master(tmp_path: Path) -> None:
    proc = start_broker(tmp_path, "memory_budget = '64mb'\ndestination_memory_limit = '1mb'\n"
                                  "non_persistent = 'spill'")
    try:
        spill_some(proc, tmp_path, "/queue/lost")
        os.unlink(tmp_path / "data" / "lock")
        assert proc.wait_exit(20) == 3, proc.log_text()  # lock lost: it stops at once
        assert temp_files(tmp_path)  # nothing removed on a file system that may hang
        proc.start()
        assert proc.wait_role("master", 20), proc.log_text()
        assert temp_files(tmp_path) == []
    finally:
        proc.stop()


def test_at_the_temp_usage_limit_the_producer_is_held_then_refused_naming_it(tmp_path: Path) -> None:
    proc = start_broker(tmp_path, "memory_budget = '64mb'\nproducer_flow_control_timeout = 2.0\n"
                                  "non_persistent = 'spill'\ntemp_usage = '2mb'\n"
                                  "[store]\ncursor_window = '64kb'")
    try:
        with RawStomp(HOST, proc.port, timeout=SLOW) as producer:
            assert producer.connect().startswith("CONNECTED")
            receipted, reply, last_receipt = fill(producer, "/queue/full", b"f" * BODY, 200)
            held = time.monotonic() - last_receipt
        # One message in the empty window, then 2 MiB of 64 KiB records, then no room.
        assert 25 <= receipted <= 40, receipted
        assert error_message(reply) == "temporary store full (limits.temp_usage)"
        assert "the temporary store holds" in reply and "2 MiB" in reply
        assert held >= 1.5, f"refused after {held:.2f} s: the producer was not held back first"
        assert metric(proc, "batonmq_temp_store_limit_bytes") == 2 * MiB
    finally:
        proc.stop()


def wait_for(condition: Callable[[], bool], seconds: float = 10) -> bool:
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.05)
    return bool(condition())


def durable_subscriber(proc: BrokerProc) -> tuple[Any, Recorder]:
    """stomp.py as client-id `c`, its subscription `n` to /topic/spill attached (receipted)."""
    conn, recorder = connect(HOST, proc.port, headers={"client-id": "c"})
    conn.subscribe("/topic/spill", id="1", ack="auto", headers={"activemq.subscriptionName": "n",
                                                                 "receipt": "sub"})
    assert recorder.wait_receipt("sub", SLOW), recorder.errors
    return conn, recorder


def test_a_durable_subscription_spills_while_away_and_its_unsubscribe_frees_the_files(tmp_path: Path) -> None:
    # producer_flow_control_timeout = 0: were the subscription not spilling, its 1 MiB share would
    # refuse the producer at once.
    proc = start_broker(tmp_path, "memory_budget = '64mb'\ndestination_memory_limit = '1mb'\n"
                                  "producer_flow_control_timeout = 0\nnon_persistent = 'spill'")
    spilled = 'batonmq_destination_spilled{destination="durable:c:n"}'
    try:
        conn, _ = durable_subscriber(proc)
        conn.disconnect()
        with RawStomp(HOST, proc.port, timeout=SLOW) as producer:
            assert producer.connect().startswith("CONNECTED")
            for i in range(100):
                producer.send_frame("SEND", {"destination": "/topic/spill", "receipt": f"r{i}"}, body(i))
                reply = producer.read_frame(SLOW)
                assert reply.startswith("RECEIPT"), reply[:500]
        assert metric(proc, 'batonmq_destination_depth{destination="durable:c:n"}') == 100
        assert metric(proc, spilled) >= 100 - MiB // BODY
        assert wait_for(lambda: written(tmp_path) >= 80 * BODY)
        conn, recorder = durable_subscriber(proc)
        try:
            got = [int(recorder.messages.get(timeout=SLOW).body[:8]) for _ in range(100)]
            assert got == list(range(100)) and recorder.errors == []
        finally:
            conn.disconnect()
        assert wait_for(lambda: not temp_files(tmp_path)), temp_files(tmp_path)
        spill_some(proc, tmp_path, "/topic/spill")  # while away again, then the subscription goes
        conn, recorder = connect(HOST, proc.port, headers={"client-id": "c"})
        try:
            conn.unsubscribe("1", headers={"activemq.subscriptionName": "n", "receipt": "gone"})
            assert recorder.wait_receipt("gone", SLOW), recorder.errors
        finally:
            conn.disconnect()
        assert wait_for(lambda: not temp_files(tmp_path)), temp_files(tmp_path)
        assert metric(proc, "batonmq_temp_store_bytes") == 0
    finally:
        proc.stop()


def test_without_spill_no_temporary_store_is_made(tmp_path: Path) -> None:
    proc = start_broker(tmp_path, "memory_budget = '64mb'\ndestination_memory_limit = '1mb'\n"
                                  "producer_flow_control_timeout = 0")
    try:
        with RawStomp(HOST, proc.port, timeout=SLOW) as producer:
            assert producer.connect().startswith("CONNECTED")
            _, reply, _ = fill(producer, "/queue/mem", b"m" * BODY, 100)
        assert error_message(reply) == "destination full (limits.destination_memory_limit)"
        assert not (tmp_path / "data" / "tmp").exists()
    finally:
        proc.stop()


def temp_queue_metric(proc: BrokerProc, name: str) -> tuple[str, float]:
    """The one temporary queue's broker-wide name and its gauge `name` (from /metrics)."""
    found = re.findall(rf'^batonmq_destination_{name}{{destination="(/remote-temp-queue/[^"]+)"}} (\S+)$',
                       scrape(proc), re.MULTILINE)
    assert len(found) == 1, found
    return found[0][0], float(found[0][1])


def send_to_temp_queue(conn: Any, recorder: Recorder, count: int, batch: str) -> None:
    """`count` messages to /temp-queue/r, every one receipted, all persistent but each tenth."""
    for i in range(count):
        headers = {} if i % 10 == 0 else {"persistent": "true"}
        conn.send("/temp-queue/r", body(i), headers=headers, receipt=f"{batch}{i}")
        assert recorder.wait_receipt(f"{batch}{i}", SLOW), recorder.errors


def test_a_temporary_queue_spills_persistent_messages_delivers_them_persistent_and_frees_its_files(
        tmp_path: Path) -> None:
    # producer_flow_control_timeout = 0: were the persistent ones held in memory (as a temporary
    # queue's once were), its 1 MiB share would refuse the producer at once.
    proc = start_broker(tmp_path, "memory_budget = '64mb'\ndestination_memory_limit = '1mb'\n"
                                  "producer_flow_control_timeout = 0\nnon_persistent = 'spill'")
    try:
        conn, recorder = connect(HOST, proc.port)  # the owner: only it may consume its temporary queue
        try:
            send_to_temp_queue(conn, recorder, 100, "a")
            name, spilled = temp_queue_metric(proc, "spilled")
            assert spilled >= 100 - MiB // BODY
            assert metric(proc, f'batonmq_destination_depth{{destination="{name}"}}') == 100
            assert metric(proc, "batonmq_temp_store_bytes") >= spilled * BODY
            assert wait_for(lambda: written(tmp_path) >= 80 * BODY)
            conn.subscribe("/temp-queue/r", id="1", ack="auto")
            frames = [recorder.messages.get(timeout=SLOW) for _ in range(100)]
            assert [int(f.body[:8]) for f in frames] == list(range(100))
            assert [f.headers.get("persistent") for f in frames] == [None if i % 10 == 0 else "true"
                                                                      for i in range(100)]
            assert {f.headers["destination"] for f in frames} == {"/temp-queue/r"}
            assert recorder.errors == []
            assert wait_for(lambda: not temp_files(tmp_path)), temp_files(tmp_path)
            conn.unsubscribe("1")
            send_to_temp_queue(conn, recorder, 100, "b")  # a backlog again, then the connection ends
            assert temp_queue_metric(proc, "spilled")[1] >= 100 - MiB // BODY
            assert wait_for(lambda: written(tmp_path) >= 80 * BODY)
        finally:
            conn.disconnect()
        assert wait_for(lambda: not temp_files(tmp_path)), temp_files(tmp_path)
        assert metric(proc, "batonmq_temp_store_bytes") == 0
        assert name not in scrape(proc)
    finally:
        proc.stop()
