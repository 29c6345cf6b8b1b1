"""kill -9 crash loops on a paging broker: nothing receipted lost, nothing acked resurrected.

Producers send receipted persistent ~1 KiB messages (one after another, so each producer's
messages are stored in its order); one consumer acks each with a receipt, a little slower, so a
backlog builds up far beyond the 4 KiB cursor window (set here through the TOML name
`[store] cursor_window`). The broker is killed -9 at random moments, sometimes while it recovers,
and started again on the same directory; every client reconnects. Checked at the end, from the
consumer's own record of what it saw in which order:
- every receipted message was delivered and acked (an ACK without its RECEIPT may have landed);
- no message is delivered again after the RECEIPT of its ACK;
- a message delivered again is flagged `redelivered`, and so is anything delivered out of its
  producer's order: the unflagged deliveries of each producer are in its order.

BATONMQ_CRASH_ITERATIONS (kills of the long run, default 20) and BATONMQ_CRASH_SEED replay or
lengthen a run.
"""

from __future__ import annotations

import contextlib
import os
import queue
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import stomp
import stomp.exception

from benchmarks.brokers import free_port
from tests.helpers.paging import HOST, BrokerProcess, body_for, require_cursor_window, window_config
from tests.helpers.stomppy import Recorder

DESTINATION = "/queue/crash"
RECEIPT_TIMEOUT = 5.0
CONSUMER_PAUSE = 0.002  # seconds per message: the consumer is slower than the producers
DRAIN_TIMEOUT = 60.0
QUIET = 1.0
MIN_BACKLOG = 5 * 4  # messages waiting at some kill: five windows of ~1 KiB messages at least
MAX_BACKLOG = 200  # producers wait above it, so that the final drain stays short

Key = tuple[int, int]  # (producer, seq)


def connect(port: int, stop: threading.Event) -> tuple[stomp.Connection, Recorder] | None:
    """Connect, retrying while the broker restarts; None once `stop` is set."""
    while not stop.is_set():
        conn = stomp.Connection12([(HOST, port)], heartbeats=(0, 0), auto_content_length=True,
                                  reconnect_attempts_max=1, reconnect_sleep_initial=0.05)
        recorder = Recorder()
        conn.set_listener("recorder", recorder)
        try:
            conn.connect(wait=True)
            return conn, recorder
        except (stomp.exception.StompException, OSError):
            with contextlib.suppress(Exception):
                conn.disconnect()
            stop.wait(0.05)
    return None


def quietly_disconnect(conn: stomp.Connection) -> None:
    with contextlib.suppress(Exception):
        if conn.is_connected():
            conn.disconnect()


@dataclass
class Producer:
    index: int
    port: int
    stop: threading.Event
    backlog: Callable[[], int]
    receipted: list[int] = field(default_factory=list)
    attempted: int = 0
    thread: threading.Thread | None = None

    def start(self) -> Producer:
        self.thread = threading.Thread(target=self._run, name=f"producer-{self.index}", daemon=True)
        self.thread.start()
        return self

    def _run(self) -> None:
        while (client := connect(self.port, self.stop)) is not None:
            conn, events = client
            try:
                while not self.stop.is_set():
                    if self.backlog() > MAX_BACKLOG:
                        self.stop.wait(0.01)
                        continue
                    self.attempted += 1
                    seq = self.attempted
                    receipt = f"p{self.index}-{seq}"
                    conn.send(DESTINATION, body_for(f"p{self.index}-{seq}"), receipt=receipt, headers={
                        "persistent": "true", "producer": str(self.index), "seq": str(seq)})
                    if not events.wait_receipt(receipt, RECEIPT_TIMEOUT):
                        break  # the broker went: this one may or may not be stored
                    self.receipted.append(seq)
            except (stomp.exception.StompException, OSError):
                pass
            finally:
                quietly_disconnect(conn)


@dataclass
class Consumer:
    port: int
    stop: threading.Event
    # ("deliver", key, redelivered) and ("acked", key) or ("ack?", key: no RECEIPT), in order.
    log: list[tuple[str, Key, bool]] = field(default_factory=list)
    acks: int = 0  # acks with their RECEIPT
    thread: threading.Thread | None = None

    def start(self) -> Consumer:
        self.thread = threading.Thread(target=self._run, name="consumer", daemon=True)
        self.thread.start()
        return self

    def _run(self) -> None:
        while (client := connect(self.port, self.stop)) is not None:
            conn, events = client
            try:
                conn.subscribe(DESTINATION, id="c", ack="client-individual",
                               headers={"activemq.prefetchSize": "20"})
                while not self.stop.is_set() and self._take_one(conn, events):
                    pass
            except (stomp.exception.StompException, OSError):
                pass
            finally:
                quietly_disconnect(conn)

    def _take_one(self, conn: stomp.Connection, events: Recorder) -> bool:
        """Receive and ack one message; False once the connection is gone."""
        try:
            frame = events.messages.get(timeout=0.2)
        except queue.Empty:
            return not events.disconnected.is_set()
        key = (int(frame.headers["producer"]), int(frame.headers["seq"]))
        self.log.append(("deliver", key, frame.headers.get("redelivered") == "true"))
        assert frame.body == body_for(f"p{key[0]}-{key[1]}"), f"{key} arrived with another body"
        time.sleep(CONSUMER_PAUSE)
        receipt = f"a{len(self.log)}"
        try:
            conn.ack(frame.headers["ack"], receipt=receipt)
            acked = events.wait_receipt(receipt, RECEIPT_TIMEOUT)
        except (stomp.exception.StompException, OSError):
            acked = False
        self.log.append(("acked" if acked else "ack?", key, False))
        self.acks += acked
        return acked

    def settled(self) -> set[Key]:
        return {key for what, key, _ in list(self.log) if what in ("acked", "ack?")}


def receipted_keys(producers: list[Producer]) -> set[Key]:
    return {(p.index, seq) for p in producers for seq in list(p.receipted)}


def check(consumer: Consumer, producers: list[Producer]) -> None:
    acked: set[Key] = set()
    seen: set[Key] = set()
    last_fresh: dict[int, int] = {}
    for what, key, redelivered in consumer.log:
        if what == "acked":
            acked.add(key)
        if what != "deliver":
            continue
        producer, seq = key
        assert seq <= producers[producer].attempted, f"{key} was never sent"
        assert key not in acked, f"{key} delivered again after the RECEIPT of its ACK"
        assert redelivered or key not in seen, f"{key} delivered twice, the second time not flagged"
        if not redelivered:
            assert last_fresh.get(producer, 0) < seq, (
                f"producer {producer}: {seq} delivered unflagged after {last_fresh[producer]}")
            last_fresh[producer] = seq
        seen.add(key)
    lost = receipted_keys(producers) - consumer.settled()
    assert not lost, f"receipted but never delivered and acked: {sorted(lost)[:10]} ({len(lost)} in all)"


@contextlib.contextmanager
def workload(port: int, producers: int) -> Iterator[tuple[list[Producer], Consumer, threading.Event]]:
    stop_producers, stop_consumer = threading.Event(), threading.Event()
    consumer = Consumer(port, stop_consumer).start()
    sending: list[Producer] = []

    def backlog() -> int:  # roughly: a redelivered message is acked twice
        return sum(len(p.receipted) for p in sending) - consumer.acks

    sending.extend(Producer(i, port, stop_producers, backlog).start() for i in range(producers))
    try:
        yield sending, consumer, stop_producers
    finally:
        stop_producers.set()
        stop_consumer.set()
        for thread in [p.thread for p in sending] + [consumer.thread]:
            assert thread is not None
            thread.join(RECEIPT_TIMEOUT * 3)


def crash_loop(store: str, tmp_path: Path, kills: int, producers: int) -> None:
    require_cursor_window()
    seed = int(os.environ.get("BATONMQ_CRASH_SEED", random.randrange(2**32)))
    rng = random.Random(f"{seed}/{store}")
    config = window_config(tmp_path / "batonmq.toml")
    broker = BrokerProcess(tmp_path / "data", free_port((HOST,)), store, ["--config", str(config)])
    backlogs: list[int] = []
    try:
        broker.start()
        with workload(broker.port, producers) as (sending, consumer, stop_producers):
            for _ in range(kills):
                time.sleep(rng.uniform(0.3, 1.5))
                backlogs.append(len(receipted_keys(sending) - consumer.settled()))
                broker.kill9()
                if rng.random() < 0.2:  # once more while it recovers the paged backlog
                    broker.start(wait=False)
                    time.sleep(rng.uniform(0.0, 0.5))
                    broker.kill9()
                broker.start()
            stop_producers.set()
            deadline = time.monotonic() + DRAIN_TIMEOUT
            while receipted_keys(sending) - consumer.settled() and time.monotonic() < deadline:
                time.sleep(0.1)
            time.sleep(QUIET)  # anything acked that came back now would be in the consumer's log
        where = (f"store={store} seed={seed} (BATONMQ_CRASH_SEED={seed} to replay); "
                 f"backlog at kills {backlogs}")
        try:
            check(consumer, sending)
        except AssertionError as error:
            raise AssertionError(f"{error}\n{where}\nbroker log:\n{broker.log()}") from error
        assert max(backlogs) >= MIN_BACKLOG, f"the backlog never went beyond the window: {where}"
    finally:
        broker.close()


@pytest.mark.parametrize("store", ["journal", "leveldb", "appendlog"])
def test_kill9_loop_short(store: str, tmp_path: Path) -> None:
    crash_loop(store, tmp_path, kills=3, producers=2)


@pytest.mark.slow  # 30-60 s per store
@pytest.mark.chaos  # the short loop above runs in make test; this one with make chaos
@pytest.mark.timeout(600)
@pytest.mark.parametrize("store", ["journal", "leveldb", "appendlog"])
def test_kill9_loop_long(store: str, tmp_path: Path) -> None:
    crash_loop(store, tmp_path, kills=int(os.environ.get("BATONMQ_CRASH_ITERATIONS", "20")), producers=3)
