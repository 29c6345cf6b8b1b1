"""The memory budget with a real broker process (docs/memory.md): producers held back, then refused
with an ERROR naming the limit, while another client goes on being served.

Each test starts `python -m broker start` with small limits from a TOML file, a victim that sends one
receipted message at a time (tests/helpers/victim.py) and a hostile client over a raw socket or
stomp.py. What the broker counts is read from its own /metrics endpoint.
"""

from __future__ import annotations

import re
import select
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.cluster import BrokerProc
from tests.helpers.metricsbroker import scrape, start_scraped
from tests.helpers.rawstomp import RawStomp
from tests.helpers.stomppy import connect
from tests.helpers.victim import Victim

HOST = "127.0.0.1"
MiB = 1024 * 1024
BOUND = 1.0  # seconds: the longest a victim RECEIPT may take meanwhile (as in test_fairness.py)
SLOW = 60.0


def start_broker(tmp_path: Path, limits: str) -> BrokerProc:
    return start_scraped("mem", HOST, tmp_path, f"[limits]\n{limits}\n")


def metric(proc: BrokerProc, name: str) -> float:
    text = scrape(proc)
    match = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    assert match is not None, f"{name} not in:\n{text[-2000:]}"
    return float(match.group(1))


@pytest.fixture
def victim_of() -> Iterator[list[Victim]]:
    started: list[Victim] = []
    yield started
    for victim in started:
        victim.stop()


def run_victim(proc: BrokerProc, started: list[Victim]) -> Victim:
    victim = Victim(HOST, proc.port, "/queue/victim")
    victim.start()
    started.append(victim)
    return victim


def check_victim(victim: Victim, start: float, end: float, at_least: int) -> None:
    assert victim.failure is None, victim.failure
    taken = victim.during(start, end)
    assert len(taken) >= at_least, f"only {len(taken)} victim receipts in {end - start:.1f} s"
    assert max(taken) < BOUND, f"a victim RECEIPT took {max(taken):.3f} s"


def error_message(frame: str) -> str:
    assert frame.startswith("ERROR"), frame[:300]
    return next(line.partition(":")[2] for line in frame.split("\n") if line.startswith("message:"))


def fill(producer: RawStomp, destination: str, body: bytes, most: int) -> tuple[int, str, float]:
    """SEND receipted until one is not answered at once: (receipted, the reply, when it came)."""
    last = time.monotonic()
    for i in range(most):
        producer.send_frame("SEND", {"destination": destination, "receipt": f"p{i}"}, body)
        reply = producer.read_frame(SLOW)
        if not reply.startswith("RECEIPT"):
            return i, reply, last
        last = time.monotonic()
    raise AssertionError(f"{most} SENDs all receipted: no limit was reached")


def test_a_producer_past_its_destination_share_is_held_then_refused_naming_the_limit(
    tmp_path: Path, victim_of: list[Victim]
) -> None:
    proc = start_broker(tmp_path, "memory_budget = '64mb'\ndestination_memory_limit = '4mb'\n"
                                  "producer_flow_control_timeout = 3.0")
    try:
        victim = run_victim(proc, victim_of)
        with RawStomp(HOST, proc.port, timeout=SLOW) as producer:
            assert producer.connect().startswith("CONNECTED")
            start = time.monotonic()
            receipted, reply, last_receipt = fill(producer, "/queue/hog", b"h" * (256 * 1024), 100)
            held = time.monotonic() - last_receipt
            end = time.monotonic()
        assert 10 <= receipted <= 16  # 4 MiB of 256 KiB messages, then no room
        assert error_message(reply) == "destination full (limits.destination_memory_limit)"
        assert "/queue/hog holds" in reply and "4 MiB" in reply
        assert held >= 2.5, f"refused after {held:.2f} s: the producer was not held back first"
        check_victim(victim, start, end, at_least=20)  # ~3 s of the victim's SENDs, each answered
        assert metric(proc, "batonmq_memory_budget_bytes") == 64 * MiB
        assert metric(proc, 'batonmq_memory_used_bytes{pool="destinations"}') >= 3.5 * MiB
    finally:
        proc.stop()


def test_consuming_makes_room_and_the_held_producer_goes_on_without_error(tmp_path: Path) -> None:
    proc = start_broker(tmp_path, "memory_budget = '64mb'\ndestination_memory_limit = '2mb'\n"
                                  "producer_flow_control_timeout = 60.0")
    try:
        with RawStomp(HOST, proc.port, timeout=SLOW) as producer:
            assert producer.connect().startswith("CONNECTED")
            body = b"r" * (128 * 1024)
            for i in range(15):  # under 2 MiB
                producer.send_frame("SEND", {"destination": "/queue/room", "receipt": f"a{i}"}, body)
                assert producer.read_frame(SLOW).startswith("RECEIPT")
            for i in range(5):  # past it: these wait in the broker, unanswered
                producer.send_frame("SEND", {"destination": "/queue/room", "receipt": f"b{i}"}, body)
            assert producer.read_frame(1.5) == ""  # held back: neither RECEIPT nor ERROR
            conn, recorder = connect(HOST, proc.port)  # stomp.py consumes and so makes room
            try:
                conn.subscribe("/queue/room", id="1", ack="auto")
                replies = [producer.read_frame(SLOW) for _ in range(5)]
                assert all(r.startswith("RECEIPT") for r in replies), replies
                got = 0
                deadline = time.monotonic() + SLOW
                while got < 20 and time.monotonic() < deadline:
                    recorder.messages.get(timeout=SLOW)
                    got += 1
                assert got == 20 and recorder.errors == []
            finally:
                conn.disconnect()
            producer.send_frame("SEND", {"destination": "/queue/room", "receipt": "after"}, body)
            assert producer.read_frame(SLOW).startswith("RECEIPT")
    finally:
        proc.stop()


def writer(sock: socket.socket, data: bytes) -> threading.Thread:
    """Send `data` in a thread: sendall blocks once the broker stops reading (flow control)."""

    def push() -> None:
        try:
            sock.sendall(data)
        except OSError:
            pass  # closed by the broker after its ERROR

    thread = threading.Thread(target=push, daemon=True)
    thread.start()
    return thread


def test_an_uncommitted_transaction_counts_in_its_connection_share(
    tmp_path: Path, victim_of: list[Victim]
) -> None:
    proc = start_broker(tmp_path, "memory_budget = '128mb'\nconnection_memory_limit = '8mb'\n"
                                  "producer_flow_control_timeout = 2.0")
    try:
        victim = run_victim(proc, victim_of)
        with RawStomp(HOST, proc.port, timeout=SLOW) as hog:
            assert hog.connect().startswith("CONNECTED")
            hog.send_frame("BEGIN", {"transaction": "t"})
            head = b"SEND\ndestination:/queue/tx\ntransaction:t\ncontent-length:1048576\n\n"
            sends = (head + b"t" * MiB + b"\0") * 24 + b"COMMIT\ntransaction:t\n\n\0"
            start = time.monotonic()
            writer(hog.sock, sends)
            reply = hog.read_frame(SLOW)
            end = time.monotonic()
        assert error_message(reply) == "memory limit reached (limits.connection_memory_limit)", reply
        assert end - start >= 1.5  # held for the flow-control timeout first
        check_victim(victim, start, end, at_least=10)
        deadline = time.monotonic() + 10  # the connection's transaction is given back with it
        while metric(proc, 'batonmq_memory_used_bytes{pool="inbound"}') > MiB and time.monotonic() < deadline:
            time.sleep(0.1)
        assert metric(proc, 'batonmq_memory_used_bytes{pool="inbound"}') <= MiB
        assert metric(proc, 'batonmq_destination_depth{destination="/queue/tx"}') == 0  # never committed
    finally:
        proc.stop()


def test_partial_frames_count_and_the_connections_past_the_budget_are_refused(
    tmp_path: Path, victim_of: list[Victim]
) -> None:
    proc = start_broker(tmp_path, "memory_budget = '64mb'\nproducer_flow_control_timeout = 2.0")
    socks: list[socket.socket] = []
    try:
        victim = run_victim(proc, victim_of)
        unfinished = b"SEND\ndestination:/queue/parked\ncontent-length:8388608\n\n" + b"p" * (7 * MiB)
        start = time.monotonic()
        for _ in range(6):  # 42 MiB of partial frames; frames being read may take half of 64 MiB
            sock = socket.create_connection((HOST, proc.port), timeout=SLOW)
            sock.sendall(b"CONNECT\naccept-version:1.2\n\n\0")
            socks.append(sock)
            writer(sock, unfinished)
        received = {sock: b"" for sock in socks}
        deadline = time.monotonic() + SLOW
        while time.monotonic() < deadline and not any(b"ERROR" in data for data in received.values()):
            readable, _, _ = select.select(socks, [], [], 0.2)
            for sock in readable:
                try:
                    received[sock] += sock.recv(65536) or b""
                except OSError:
                    pass
        refused = [data.decode(errors="replace") for data in received.values() if b"ERROR" in data]
        end = time.monotonic()
        assert refused, "no parked connection was refused"
        assert all("memory limit reached (half of limits.memory_budget)" in r for r in refused), refused[0]
        check_victim(victim, start, end, at_least=10)
        assert metric(proc, 'batonmq_memory_used_bytes{pool="inbound"}') <= 32 * MiB + 6 * MiB
    finally:
        for sock in socks:
            sock.close()
        proc.stop()


def test_a_topic_subscriber_that_never_reads_does_not_hold_the_producer(tmp_path: Path) -> None:
    proc = start_broker(tmp_path, "memory_budget = '64mb'\ntopic_pending_limit = 100\n"
                                  "producer_flow_control_timeout = 2.0")
    try:
        stuck = socket.socket()
        stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stuck.connect((HOST, proc.port))
        stuck.sendall(b"CONNECT\naccept-version:1.2\n\n\0SUBSCRIBE\nid:s\ndestination:/topic/slow\n"
                      b"receipt:s\n\n\0")
        time.sleep(0.5)  # the subscription is in place (its RECEIPT is unread on purpose)
        with RawStomp(HOST, proc.port, timeout=SLOW) as producer:
            assert producer.connect().startswith("CONNECTED")
            body = b"s" * (64 * 1024)
            for i in range(2000):  # 125 MiB: twice the budget, through one subscriber that never reads
                producer.send_frame("SEND", {"destination": "/topic/slow", "receipt": f"t{i}"}, body)
                reply = producer.read_frame(SLOW)
                assert reply.startswith("RECEIPT"), (i, reply[:300])
        assert metric(proc, 'batonmq_destination_depth{destination="/topic/slow"}') <= 100
        assert metric(proc, "batonmq_memory_used_bytes{pool=\"destinations\"}") <= 100 * 70 * 1024
        stuck.close()
    finally:
        proc.stop()
