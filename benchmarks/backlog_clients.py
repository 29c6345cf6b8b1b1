"""The backlog benchmark's clients: pipelined receipted producers, and a consumer that checks order.

Producers run in this process over raw links (benchmarks.link), each with its own `bench-producer`
tag and sequence numbers 0, 1, ...; a receipt every `window` messages (STOMP 1.2: a RECEIPT means
every earlier frame of the connection was handled), so `count` is exactly what the broker receipted.
The consumer keeps one bit of state per expected message (a bytearray, bounded by the backlog) and
counts what arrived, duplicates, order breaks within one producer, and redeliveries.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field, replace

from benchmarks.link import LinkError, StompLink
from benchmarks.loadgen import Job, WorkerResult, produce
from benchmarks.report import progress
from broker.tools.progress import Progress, render
from transports.stomp import Frame

WINDOW = 1000  # messages per receipt
BAR_PERIOD = 0.2
IDLE_LIMIT = 30.0  # a drain that sees nothing for this long has ended
LOG_PERIOD = 30.0  # without a terminal, a progress line this often instead of the bar


class PhaseBar:
    """The tools' progress bar on a terminal; elsewhere (a log, CI) a plain line every LOG_PERIOD s."""

    def __init__(self, label: str, total: int) -> None:
        self.bar = Progress(label, total)
        self.label, self.total = label, total
        self.started = time.monotonic()
        self.next_line = self.started + LOG_PERIOD

    def update(self, done: int) -> None:
        if self.bar.enabled:
            self.bar.update(done)
            return
        now = time.monotonic()
        if now >= self.next_line:
            self.next_line = now + LOG_PERIOD
            progress(render(self.label, done, self.total, now - self.started))

    def finish(self) -> None:
        self.bar.finish()


@dataclass
class Produced:
    count: int = 0  # receipted, over all producers
    elapsed: float = 0.0
    rate: float = 0.0
    per_producer: dict[str, int] = field(default_factory=dict)  # tag -> receipted (seq 0 .. n-1)
    errors: list[str] = field(default_factory=list)


async def _one_producer(job: Job, result: WorkerResult, deadline: float) -> None:
    link = await StompLink.open(job.host, job.port)
    try:
        await produce(link, job, deadline, result)
        if not link.disconnected:
            await link.disconnect()
    finally:
        link.abort()


async def produce_backlog(host: str, port: int, queue: str, total: int, producers: int, size: int,
                          time_limit: float, label: str) -> Produced:
    """`total` persistent messages over `producers` connections, with a progress bar on stderr."""
    base = Job("produce", host, port, queue, 0, size=size, window=WINDOW, time_limit=time_limit)
    shares = [total // producers + (1 if i < total % producers else 0) for i in range(producers)]
    jobs = [replace(base, count=n, tag=f"p{i}") for i, n in enumerate(shares) if n > 0]
    results = [WorkerResult("produce") for _ in jobs]
    began = time.monotonic()
    deadline = began + time_limit
    tasks = [asyncio.ensure_future(_one_producer(j, r, deadline)) for j, r in zip(jobs, results, strict=True)]
    bar = PhaseBar(label, total)
    try:
        while not all(t.done() for t in tasks):
            bar.update(sum(r.count for r in results))
            await asyncio.wait(tasks, timeout=BAR_PERIOD)
    finally:
        bar.finish()
        for task in tasks:
            task.cancel()
    outcome = Produced(elapsed=round(time.monotonic() - began, 3))
    for job, result, task in zip(jobs, results, tasks, strict=True):
        outcome.per_producer[str(job.tag)] = result.count
        if not task.cancelled() and task.exception() is not None:
            outcome.errors.append(f"{job.tag}: {type(task.exception()).__name__}: {task.exception()}")
    outcome.count = sum(outcome.per_producer.values())
    outcome.rate = round(outcome.count / outcome.elapsed, 1) if outcome.elapsed > 0 else 0.0
    return outcome


@dataclass
class Drained:
    expected: int
    count: int = 0  # MESSAGE frames of this run's producers
    distinct: int = 0
    duplicates: int = 0
    out_of_order: int = 0  # a producer's message after one of its later ones
    extra: int = 0  # sequence numbers beyond the receipted ones (sent, stored, never receipted)
    redelivered: int = 0
    foreign: int = 0  # without our headers
    first_s: float | None = None  # SUBSCRIBE -> first message
    elapsed: float = 0.0  # first -> last message: a short drain is not dominated by its start
    rate: float = 0.0  # messages after the first / elapsed
    error: str | None = None

    @property
    def missing(self) -> int:
        return self.expected - self.distinct

    @property
    def complete_in_order(self) -> bool:
        return self.missing == 0 and self.duplicates == 0 and self.out_of_order == 0 and self.error is None


class OrderCheck:
    """Per producer: which sequence numbers arrived (a bit each) and the highest so far."""

    def __init__(self, expected: dict[str, int], result: Drained) -> None:
        self.seen = {tag: bytearray(n) for tag, n in expected.items()}
        self.last = dict.fromkeys(expected, -1)
        self.result = result
        self.first_at: float | None = None
        self.last_at = 0.0  # the rate ends with the last message, not the idle wait after it

    def note(self, frame: Frame) -> None:
        tag, seq_text = frame.get("bench-producer"), frame.get("bench-seq")
        result = self.result
        if tag not in self.seen or seq_text is None or not seq_text.isdigit():
            result.foreign += 1
            return
        seq, seen = int(seq_text), self.seen[tag]
        self.last_at = time.monotonic()
        if self.first_at is None:
            self.first_at = self.last_at
        result.count += 1
        result.redelivered += frame.get("redelivered") == "true"
        if seq < self.last[tag]:
            result.out_of_order += 1
        self.last[tag] = max(self.last[tag], seq)
        if seq >= len(seen):
            result.extra += 1
        elif seen[seq]:
            result.duplicates += 1
        else:
            seen[seq] = 1
            result.distinct += 1


async def drain(host: str, port: int, queue: str, expected: dict[str, int], ack: str, prefetch: int,
                time_limit: float, label: str) -> Drained:
    """Consume until every receipted message arrived, nothing came for IDLE_LIMIT s, or time_limit."""
    result = Drained(sum(expected.values()))
    check = OrderCheck(expected, result)
    link = await StompLink.open(host, port)
    bar = PhaseBar(label, result.expected)
    began = time.monotonic()
    try:
        link.send(Frame("SUBSCRIBE", {"destination": queue, "id": "0", "ack": ack,
                                      "activemq.prefetchSize": str(prefetch)}))
        async with asyncio.timeout(time_limit):
            await _receive(link, check, ack, bar)
    except (LinkError, OSError, TimeoutError) as error:
        result.error = f"{type(error).__name__}: {error}"
    finally:
        if check.first_at is not None:
            result.first_s = round(check.first_at - began, 4)
            result.elapsed = round(check.last_at - check.first_at, 4)
        bar.finish()
        await link.disconnect()
        link.abort()
    result.rate = round((result.distinct - 1) / result.elapsed, 1) if result.elapsed > 0 else 0.0
    return result


async def _receive(link: StompLink, check: OrderCheck, ack: str, bar: PhaseBar) -> None:
    result = check.result
    while result.distinct < result.expected:
        frame = await link.next_frame(IDLE_LIMIT)
        if frame is None or frame.command == "ERROR":
            raise LinkError(f"consumer got {frame.command if frame else 'connection closed'}")
        if frame.command != "MESSAGE":
            continue
        check.note(frame)
        if ack == "client-individual":
            link.ack(frame.get("ack") or frame.get("message-id") or "")
            await link.drain_if_full()
        bar.update(result.distinct)
