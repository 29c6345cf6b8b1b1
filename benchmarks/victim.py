"""The well-behaved client of the fairness benchmark: a receipted producer and a consumer on one queue.

The producer sends one persistent 1 KiB message with a receipt every `interval` (10 ms) on a fixed
schedule, whether or not earlier receipts have come back (open loop: a stalled broker shows as long
receipts, not as fewer samples). Latency is SEND written -> RECEIPT read. A receipt still missing
when the run ends (after `grace`), or lost with a dropped connection, counts as missing and enters
the latencies with the time it had waited, so a stall can never make the figures look better.
The consumer (ack:auto) receives the messages and records their end-to-end latency. A dropped
connection is an error; both sides reconnect until the run ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

from benchmarks.link import LinkError, SendTemplate, StompLink, latency_ms
from transports.stomp import Frame

CONNECT_TIMEOUT = 5.0
RECONNECT_DELAY = 0.2
MAX_ERROR_LINES = 30  # every error is counted; only the first few are kept as text
_LINK_ERRORS = (LinkError, OSError, TimeoutError)


@dataclass
class VictimResult:
    sent: int = 0
    receipted: int = 0
    missing: int = 0
    latencies: list[float] = field(default_factory=list)  # ms, SEND -> RECEIPT (missing ones censored)
    received: int = 0
    delivery: list[float] = field(default_factory=list)  # ms, end to end
    error_count: int = 0
    errors: list[str] = field(default_factory=list)


class Victim:
    def __init__(self, target: tuple[str, int], destination: str, interval: float = 0.01,
                 size: int = 1024) -> None:
        self.target, self.destination = target, destination
        self.interval = interval
        self.template = SendTemplate(destination, size, persistent=True)
        self.result = VictimResult()
        self.began = time.monotonic()
        self._pending: dict[str, float] = {}  # receipt id -> perf_counter at the write
        self._producer: StompLink | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def error(self, who: str, what: str) -> None:
        self.result.error_count += 1
        if len(self.result.errors) < MAX_ERROR_LINES:
            self.result.errors.append(f"{time.monotonic() - self.began:.2f}s {who}: {what}")

    async def start(self) -> None:
        """Connect both sides and subscribe; raises if the broker does not serve a fresh client."""
        self.began = time.monotonic()
        consumer = await self._subscribed()
        self._spawn(self._consume(consumer))
        self._producer = await StompLink.open(*self.target, timeout=CONNECT_TIMEOUT)
        self._spawn(self._read_receipts(self._producer))

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def run(self, stop: asyncio.Event, grace: float) -> VictimResult:
        """Send on schedule until `stop`, then wait up to `grace` for receipts and deliveries."""
        seq, next_at = 0, time.monotonic()
        while not stop.is_set():
            link = self._producer
            if link is None or link.writer.transport.is_closing():
                await self._reconnect_producer(stop)
                next_at = time.monotonic()
                continue
            receipt = f"v{seq}"
            self._pending[receipt] = time.perf_counter()
            link.write(self.template.frame(seq, receipt))
            self.result.sent += 1
            seq += 1
            next_at = max(next_at + self.interval, time.monotonic())  # behind schedule: no burst
            await asyncio.sleep(next_at - time.monotonic())
        await self._settle(grace)
        return self.result

    async def _settle(self, grace: float) -> None:
        deadline = time.monotonic() + grace
        while self._pending and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        while self.result.received < self.result.receipted and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        self._give_up_pending()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._producer is not None:
            await self._producer.disconnect(1.0)

    def _give_up_pending(self) -> None:
        now = time.perf_counter()
        for written in self._pending.values():
            self.result.latencies.append((now - written) * 1000)
        self.result.missing += len(self._pending)
        self._pending.clear()

    async def _read_receipts(self, link: StompLink) -> None:
        try:
            while True:
                frame = await link.next_frame()
                if frame is None or frame.command == "ERROR":
                    self.error("producer", _what(frame))
                    break
                written = self._pending.pop(frame.get("receipt-id") or "", None)
                if frame.command == "RECEIPT" and written is not None:
                    self.result.latencies.append((time.perf_counter() - written) * 1000)
                    self.result.receipted += 1
        except _LINK_ERRORS as error:
            self.error("producer", f"{type(error).__name__}: {error}")
        link.abort()
        if self._producer is link:
            self._producer = None
            self._give_up_pending()  # their receipts can no longer arrive

    async def _reconnect_producer(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                self._producer = await StompLink.open(*self.target, timeout=CONNECT_TIMEOUT)
                self._spawn(self._read_receipts(self._producer))
                return
            except _LINK_ERRORS as error:
                self.error("producer", f"reconnect failed: {type(error).__name__}: {error}")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), RECONNECT_DELAY)

    async def _subscribed(self) -> StompLink:
        link = await StompLink.open(*self.target, timeout=CONNECT_TIMEOUT)
        try:
            link.send(Frame("SUBSCRIBE", {"destination": self.destination, "id": "victim", "ack": "auto",
                                          "receipt": "victim-sub"}))
            await link.wait_receipt("victim-sub", CONNECT_TIMEOUT)
        except BaseException:
            link.abort()
            raise
        return link

    async def _consume(self, link: StompLink) -> None:
        while True:
            try:
                while (frame := await link.next_frame()) is not None and frame.command != "ERROR":
                    if frame.command == "MESSAGE":
                        self.result.received += 1
                        if (delay := latency_ms(frame)) is not None:
                            self.result.delivery.append(delay)
                self.error("consumer", _what(frame))
            except _LINK_ERRORS as error:
                self.error("consumer", f"{type(error).__name__}: {error}")
            link.abort()
            link = await self._resubscribe()

    async def _resubscribe(self) -> StompLink:
        while True:  # ends when the run cancels this task
            await asyncio.sleep(RECONNECT_DELAY)
            try:
                return await self._subscribed()
            except _LINK_ERRORS as error:
                self.error("consumer", f"resubscribe failed: {type(error).__name__}: {error}")


def _what(frame: Frame | None) -> str:
    if frame is None:
        return "connection closed by the broker"
    message = frame.get("message")
    return "ERROR" + (f" ({message})" if message else "")
