"""The failover benchmark's producer and consumer: raw STOMP links that reconnect across every address.

They reconnect as ActiveMQ's failover transport does with initialReconnectDelay=10 ms and no back-off:
every address in turn, 10 ms between passes, so the client adds at most ~10 ms to a failover. Only the
master binds its port, so whichever address accepts is the master. The producer resends an unreceipted
SEND with the same `batonmq.producer-id` (the broker's duplicate detection, design section 3) and records
every receipt; the consumer acks each MESSAGE individually and records every delivery. Memory grows with
the number of messages, which the run's duration and rate bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field

from benchmarks.link import LinkError, SendTemplate, StompLink
from transports.stomp import Frame

RECONNECT_DELAY = 0.01
CONNECT_TIMEOUT = 1.0
RECEIPT_TIMEOUT = 10.0  # a receipt slower than this counts as a dead connection: resend elsewhere
CONSUMER_PREFETCH = 100
_LINK_ERRORS = (LinkError, OSError, ConnectionError, EOFError)


@dataclass(frozen=True)
class Event:
    at: float  # wall clock, as the brokers' timeline lines
    host: str
    seq: int
    redelivered: bool = False


async def connect_any(addresses: list[tuple[str, int]], stop: asyncio.Event) -> StompLink | None:
    """The first address that completes a STOMP handshake, trying all in turn until `stop`."""
    while not stop.is_set():
        for host, port in addresses:
            try:
                return await StompLink.open(host, port, timeout=CONNECT_TIMEOUT)
            except (*_LINK_ERRORS, TimeoutError):
                continue
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), RECONNECT_DELAY)
    return None


@dataclass
class Producer:
    addresses: list[tuple[str, int]]
    destination: str
    rate: float
    size: int
    run_id: str
    receipts: list[Event] = field(default_factory=list)
    sent: int = 0  # sequence numbers below this were written at least once
    resends: int = 0
    connects: int = 0

    async def run(self, stop: asyncio.Event) -> None:
        template = SendTemplate(self.destination, self.size, persistent=True)
        interval = 1.0 / self.rate
        link: StompLink | None = None
        seq, next_at = 0, time.monotonic()
        attempts = 0
        try:
            while not stop.is_set():
                if link is None:
                    link = await connect_any(self.addresses, stop)
                    if link is None:
                        break
                    self.connects += 1
                delay = next_at - time.monotonic()
                if delay > 0:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), delay)
                    if stop.is_set():
                        break
                self.sent = max(self.sent, seq + 1)
                self.resends += attempts > 0
                attempts += 1
                try:
                    link.write(template.frame(seq, f"r{seq}", f"{self.run_id}-{seq}"))
                    await link.wait_receipt(f"r{seq}", RECEIPT_TIMEOUT)
                except _LINK_ERRORS:
                    link.abort()
                    link = None
                    continue  # the same seq again, on whichever broker is master now
                self.receipts.append(Event(time.time(), link.host, seq))
                seq, attempts = seq + 1, 0
                # Steady pace, no burst to catch up after an outage.
                next_at = max(next_at + interval, time.monotonic())
        finally:
            if link is not None:
                await link.disconnect(2.0)
                link.abort()

    def first_receipt(self, after: float, host: str) -> Event | None:
        return _first(self.receipts, after, host)


@dataclass
class Consumer:
    addresses: list[tuple[str, int]]
    destination: str
    deliveries: list[Event] = field(default_factory=list)
    connects: int = 0

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            link = await connect_any(self.addresses, stop)
            if link is None:
                return
            self.connects += 1
            try:
                await self._receive(link, stop)
            except _LINK_ERRORS:
                pass  # reconnect to the next master
            finally:
                if stop.is_set():
                    await link.disconnect(2.0)
                link.abort()

    async def _receive(self, link: StompLink, stop: asyncio.Event) -> None:
        link.send(Frame("SUBSCRIBE", {"destination": self.destination, "id": "0", "ack": "client-individual",
                                      "activemq.prefetchSize": str(CONSUMER_PREFETCH)}))
        while not stop.is_set():
            try:
                frame = await link.next_frame(0.2)
            except LinkError:
                continue  # idle: look at `stop` again
            if frame is None or frame.command == "ERROR":
                raise LinkError(f"consumer: {frame.command if frame else 'connection closed'}")
            if frame.command != "MESSAGE":
                continue
            seq_text = frame.get("bench-seq", "")
            if seq_text is not None and seq_text.isdigit():
                redelivered = frame.get("redelivered") == "true"
                self.deliveries.append(Event(time.time(), link.host, int(seq_text), redelivered))
            link.ack(frame.get("ack") or frame.get("message-id") or "")

    def first_message(self, after: float, host: str) -> Event | None:
        return _first(self.deliveries, after, host)


def _first(events: list[Event], after: float, host: str) -> Event | None:
    # Scan from the end: the events of interest are recent, the list may be long.
    found = None
    for event in reversed(events):
        if event.at < after:
            break
        if event.host == host:
            found = event
    return found
