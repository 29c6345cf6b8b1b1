"""Hypothesis stateful test: a paged queue on a real broker process beside a plain model.

The broker runs with a 4 KiB cursor window and ~1 KiB messages, so most of the queue is in the
store only. Rules send (persistent, receipted), receive, ack, nack, return (the consumer leaves),
restart cleanly and kill -9 between steps; the consumer takes one message at a time (prefetch 1).
The model is a FIFO per priority: the store cursor keeps priority order only within its window
(as ActiveMQ's), so across priorities any interleaving is allowed, within one never. Every frame
must be the head of its priority, carry `redelivered` exactly when it was nacked, returned or
recovered by a restart, and at the end everything receipted and not acked has come, nothing acked.

Each store shares one broker process across examples; each example uses a queue of its own.
"""

from __future__ import annotations

import functools
import itertools
import queue
import shutil
import tempfile
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import stomp
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, precondition, rule, run_state_machine_as_test

from benchmarks.brokers import free_port
from tests.helpers.paging import HOST, BrokerProcess, body_for, require_cursor_window, window_args
from tests.helpers.stomppy import Recorder, connect, forget_dead_peer

STORES = ["journal", "leveldb", "appendlog"]
PRIORITIES = [0, 4, 9]
MAX_REDELIVERIES = 6  # Limits.max_redeliveries' default: the 7th NACK moves a message to the DLQ
FRAME_TIMEOUT = 10.0
RESTART_SPACING = 5  # steps between restarts: at most four in an example of 20 steps
QUIET = 0.5  # seconds without a frame that show nothing more is coming at the end of an example
EXAMPLE_IDS = itertools.count()


@dataclass
class Sent:
    priority: int
    redelivered: bool = False
    nacks: int = 0


@dataclass
class Model:
    waiting: dict[int, deque[int]] = field(default_factory=lambda: {p: deque() for p in PRIORITIES})
    sent: dict[int, Sent] = field(default_factory=dict)
    acked: set[int] = field(default_factory=set)
    dead: set[int] = field(default_factory=set)  # NACKed past the limit: on the DLQ, not the queue

    def back_to_front(self, seq: int) -> None:
        self.sent[seq].redelivered = True
        self.waiting[self.sent[seq].priority].appendleft(seq)

    def restarted(self) -> None:
        for seq, sent in self.sent.items():
            if seq not in self.acked and seq not in self.dead:
                sent.redelivered, sent.nacks = True, 0  # recovered: possibly delivered; no NACK count kept

    def any_waiting(self) -> bool:
        return any(self.waiting.values())


@pytest.fixture(scope="module", params=STORES)
def paged_broker(request: pytest.FixtureRequest) -> Iterator[BrokerProcess]:
    require_cursor_window()
    tmp = Path(tempfile.mkdtemp(prefix=f"paging-stateful-{request.param}-"))
    broker = BrokerProcess(tmp / "data", free_port((HOST,)), request.param, window_args())
    try:
        yield broker.start()
    finally:
        broker.close()
        shutil.rmtree(tmp, ignore_errors=True)


def step(method: Callable[..., None]) -> Callable[..., None]:
    """A rule: counts the steps since the last restart and notes a step that raised."""

    @functools.wraps(method)
    def run(self: Any, **kwargs: Any) -> None:
        self.failed = True
        method(self, **kwargs)
        self.failed = False
        self.steps_since_restart += 1

    return run


def machine_for(broker: BrokerProcess) -> type[RuleBasedStateMachine]:
    class PagedQueueMachine(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.destination = f"/queue/paged-{next(EXAMPLE_IDS)}"
            self.model = Model()
            self.seq = 0
            self.held: tuple[int, str] | None = None  # (seq, ack id) received, not yet settled
            self.receipts = itertools.count()
            self.steps_since_restart = 0
            self.failed = False  # a step raised: teardown must not bury that failure under its own
            if not broker.running():  # an earlier example failed between a kill and its restart
                broker.start()
            self._connect()

        # -- clients --------------------------------------------------------------------------------

        def _connect(self) -> None:
            self.producer, self.producer_events = connect(HOST, broker.port)
            self._subscribe()

        def _subscribe(self) -> None:
            self.consumer, self.events = connect(HOST, broker.port)
            self.consumer.subscribe(self.destination, id="s", ack="client-individual",
                                    headers={"activemq.prefetchSize": "1"})

        def _receipted(self, conn: stomp.Connection, events: Recorder, what: str, **kwargs: object) -> None:
            receipt = f"r{next(self.receipts)}"
            getattr(conn, what)(receipt=receipt, **kwargs)
            assert events.wait_receipt(receipt, FRAME_TIMEOUT), f"no RECEIPT for {what}; log:\n{broker.log()}"

        def _disconnect_all(self) -> None:
            for conn in (self.consumer, self.producer):
                if conn.is_connected():
                    conn.disconnect()

        # -- rules ----------------------------------------------------------------------------------

        @rule(priority=st.sampled_from(PRIORITIES), count=st.sampled_from([1, 1, 3, 8]))
        @step
        def send(self, priority: int, count: int) -> None:
            for _ in range(count):
                self.seq += 1
                self._receipted(self.producer, self.producer_events, "send", destination=self.destination,
                                body=body_for(f"m{self.seq}"), headers={
                                    "persistent": "true", "priority": str(priority), "seq": str(self.seq)})
                self.model.sent[self.seq] = Sent(priority)
                self.model.waiting[priority].append(self.seq)

        @precondition(lambda self: self.held is None and self.model.any_waiting())
        @rule()
        @step
        def receive(self) -> None:
            try:
                frame = self.events.messages.get(timeout=FRAME_TIMEOUT)
            except queue.Empty:
                raise AssertionError(f"nothing delivered in {FRAME_TIMEOUT} s; waiting "
                                     f"{ {p: list(w) for p, w in self.model.waiting.items()} }\n"
                                     f"log:\n{broker.log()}") from None
            seq = self._check(frame)
            self.model.waiting[self.model.sent[seq].priority].popleft()
            self.held = (seq, frame.headers["ack"])

        @precondition(lambda self: self.held is not None)
        @rule()
        @step
        def ack(self) -> None:
            assert self.held is not None
            seq, ack_id = self.held
            self._receipted(self.consumer, self.events, "ack", id=ack_id)
            self.model.acked.add(seq)
            self.held = None

        @precondition(lambda self: self.held is not None)
        @rule()
        @step
        def nack(self) -> None:
            assert self.held is not None
            seq, ack_id = self.held
            self._receipted(self.consumer, self.events, "nack", id=ack_id)
            self.held = None
            sent = self.model.sent[seq]
            sent.nacks += 1
            if sent.nacks > MAX_REDELIVERIES:
                self.model.dead.add(seq)
            else:
                self.model.back_to_front(seq)

        @precondition(lambda self: self.held is not None)
        @rule()
        @step
        def consumer_leaves(self) -> None:
            assert self.held is not None
            self._receipted(self.consumer, self.events, "disconnect")
            self.model.back_to_front(self.held[0])
            self.held = None
            self._subscribe()

        # A restart costs a second (a new process); right after another one it would test little.
        @precondition(lambda self: self.steps_since_restart >= RESTART_SPACING)
        @rule(kill=st.booleans())
        @step
        def restart(self, kill: bool) -> None:
            """A clean stop (SIGTERM) or kill -9, then a new broker process on the same directory."""
            if kill:
                broker.kill9()
                forget_dead_peer(self.consumer, self.events)
                forget_dead_peer(self.producer, self.producer_events)
            else:
                self._disconnect_all()
                assert broker.stop() == 0, f"unclean stop; log:\n{broker.log()}"
            self._after_restart()

        def _after_restart(self) -> None:
            if self.held is not None:  # in flight when the broker went: the new one delivers it again
                self.model.back_to_front(self.held[0])
                self.held = None
            self.model.restarted()
            self.steps_since_restart = 0
            broker.start()
            self._connect()

        # -- checks ---------------------------------------------------------------------------------

        def _check(self, frame: stomp.utils.Frame) -> int:
            seq = int(frame.headers["seq"])
            assert seq in self.model.sent, f"message {seq} was never sent"
            assert seq not in self.model.acked, f"message {seq} was acked, yet delivered again"
            assert seq not in self.model.dead, f"message {seq} went to the DLQ, yet came from the queue"
            sent = self.model.sent[seq]
            assert frame.body == body_for(f"m{seq}"), f"message {seq} has another body"
            head = self.model.waiting[sent.priority][0] if self.model.waiting[sent.priority] else None
            assert seq == head, (f"priority {sent.priority}: got {seq}, expected {head} "
                                 f"(waiting {list(self.model.waiting[sent.priority])})")
            flagged = frame.headers.get("redelivered") == "true"
            assert flagged == sent.redelivered, f"{seq}: redelivered {flagged}, not {sent.redelivered}"
            return seq

        def teardown(self) -> None:
            try:
                if self.failed:
                    return
                # Everything receipted and not settled must still come, in order, then nothing else.
                while self.held is not None or self.model.any_waiting():
                    if self.held is None:
                        self.receive()
                    self.ack()
                try:
                    extra = self.events.messages.get(timeout=QUIET)
                except queue.Empty:
                    return
                raise AssertionError(f"delivered after the queue was drained: {dict(extra.headers)}")
            finally:
                self._disconnect_all()

    return PagedQueueMachine


@pytest.mark.timeout(300)
def test_paged_queue_matches_model(paged_broker: BrokerProcess) -> None:
    run_state_machine_as_test(
        machine_for(paged_broker),
        # No shrinking: every step is real processes and restarts, so shrinking a failure ran for
        # minutes; a program of at most 20 steps is printed as it failed.
        settings=settings(max_examples=5, stateful_step_count=20, deadline=None,
                          phases=[Phase.explicit, Phase.reuse, Phase.generate],
                          suppress_health_check=[HealthCheck.too_slow]),
    )
