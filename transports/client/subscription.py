"""Subscriptions as async iterators of `Message`, with a bounded local queue.

When the queue is full the connection's reader waits for room instead of buffering more: the
broker then meets TCP back-pressure, which is the flow control STOMP has (design.md s4; style.md
point 2). A consumer that stops reading therefore also stalls receipts on the same connection.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, Literal

from transports.client.errors import ClientError
from transports.client.ledger import merge_headers
from transports.stomp.frame import Frame

if TYPE_CHECKING:
    from transports.client.client import Client

AckMode = Literal["auto", "client", "client-individual"]
ACK_MODES: tuple[str, ...] = ("auto", "client", "client-individual")
DEFAULT_QUEUE_BOUND = 1000  # as ActiveMQ's default queue prefetch
MAX_QUEUE_BOUND = 100_000


def subscribe_frame(
    sub_id: str,
    destination: str,
    *,
    ack: str = "auto",
    prefetch: int | None = None,
    selector: str | None = None,
    durable_name: str | None = None,
    headers: dict[str, Any] | None = None,
) -> Frame:
    """SUBSCRIBE with ActiveMQ's header names for prefetch and durable subscriptions."""
    if ack not in ACK_MODES:
        raise ValueError(f"ack must be one of {', '.join(ACK_MODES)}, not {ack!r}")
    ours = {"destination": destination, "id": sub_id, "ack": ack}
    if prefetch is not None:
        if prefetch < 1:
            raise ValueError("prefetch must be at least 1")
        ours["activemq.prefetchSize"] = str(prefetch)
    if selector is not None:
        ours["selector"] = selector
    if durable_name is not None:
        ours["activemq.subscriptionName"] = durable_name
    return Frame("SUBSCRIBE", merge_headers(ours, headers))


def ack_frame(
    command: str,
    message_headers: dict[str, str],
    *,
    version: str,
    sub_id: str,
    transaction: str | None = None,
) -> Frame:
    """ACK or NACK for one MESSAGE. STOMP 1.2 names it by the MESSAGE's `ack` header; 1.1 by
    `message-id` + `subscription`; 1.0 by `message-id` alone (and has no NACK)."""
    if version == "1.2" and "ack" in message_headers:
        headers = {"id": message_headers["ack"]}
    else:
        headers = {"message-id": message_headers.get("message-id", "")}
        if version != "1.0":
            headers["subscription"] = message_headers.get("subscription", sub_id)
    if transaction is not None:
        headers["transaction"] = transaction
    return Frame(command, headers)


class Message:
    """One delivered MESSAGE. `ack()`/`nack()` are no-ops under `ack:auto`, and for a message that
    arrived on a connection that has since failed over (the broker redelivers it, flagged
    `redelivered`). `generation` numbers the client's connection the message came on."""

    __slots__ = ("headers", "body", "generation", "_sub")

    def __init__(self, frame: Frame, sub: Subscription, generation: int = 0) -> None:
        self.headers = frame.headers
        self.body = frame.body
        self.generation = generation
        self._sub = sub

    @property
    def destination(self) -> str | None:
        return self.headers.get("destination")

    @property
    def message_id(self) -> str | None:
        return self.headers.get("message-id")

    @property
    def redelivered(self) -> bool:
        return self.headers.get("redelivered") == "true"

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    async def ack(self, *, receipt: bool = False) -> None:
        await self._sub.settle(self, "ACK", receipt=receipt)

    async def nack(self, *, receipt: bool = False) -> None:
        await self._sub.settle(self, "NACK", receipt=receipt)

    def __repr__(self) -> str:
        return f"<Message {self.message_id} on {self.destination}, {len(self.body)} bytes>"


class _End:
    """Queue sentinel: wakes a waiting consumer once the subscription has ended."""


class Subscription:
    """Async iterator of `Message`. Ends cleanly after `unsubscribe()`/`disconnect()`. When the
    link drops it raises ConnectionLost (after the messages already queued) on a plain client; a
    failover client re-subscribes it on the new connection and it goes on, unless the client
    gives up (then it raises ReconnectFailed)."""

    def __init__(self, client: Client, sub_id: str, frame: Frame, queue_bound: int) -> None:
        self.id = sub_id
        self.destination = frame.headers["destination"]
        self.ack_mode = frame.headers["ack"]
        self.frame = frame  # kept whole: a failover client re-sends it after a reconnect (same id)
        self._client = client
        self._queue: asyncio.Queue[Message | _End] = asyncio.Queue(max(1, min(queue_bound, MAX_QUEUE_BOUND)))
        self._ended = False
        self._end_exc: BaseException | None = None
        self.ready: asyncio.Future[Frame] | None = None

    # -- consumer side -----------------------------------------------------------------

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Message:
        if not (self._queue.empty() and self._ended):
            item = await self._queue.get()
            if isinstance(item, Message):
                return item
            self._queue.put_nowait(item)  # leave the sentinel for any other waiting consumer
        if self._end_exc is not None:
            raise self._end_exc
        raise StopAsyncIteration

    async def get(self, timeout: float | None = None) -> Message | None:
        """The next message, or None if none came within `timeout` seconds or the subscription
        ended cleanly."""
        try:
            async with asyncio.timeout(timeout):
                return await self.__anext__()
        except (TimeoutError, StopAsyncIteration):
            return None

    async def wait_ready(self) -> Subscription:
        """Wait until the broker has receipted the SUBSCRIBE (it is then surely registered)."""
        if self.ready is not None:
            await self.ready
        return self

    def __await__(self):  # type: ignore[no-untyped-def]
        return self.wait_ready().__await__()

    async def unsubscribe(self) -> None:
        if not self._ended:
            await self._client._unsubscribe(self)
            self.end(None)

    async def settle(self, message: Message, command: str, *, receipt: bool = False,
                     transaction: str | None = None) -> None:
        if message._sub is not self:
            raise ClientError("message belongs to another subscription")
        if self.ack_mode == "auto":
            return
        await self._client._settle(self, message, command, receipt=receipt, transaction=transaction)

    @property
    def pending(self) -> int:
        """Messages delivered to us but not yet taken by the consumer."""
        return self._queue.qsize()

    # -- connection side ---------------------------------------------------------------

    @property
    def ended(self) -> bool:
        return self._ended

    async def deliver(self, frame: Frame, generation: int = 0) -> None:
        if self._ended:
            return
        await self._queue.put(Message(frame, self, generation))

    def drop_stale(self, generation: int) -> int:
        """After a failover: forget queued messages from older connections that still need an
        ACK. The broker redelivers them (their ACK could no longer reach it); under `ack:auto` the
        broker already counts them consumed, so those are kept. Returns how many were dropped."""
        if self.ack_mode == "auto":
            return 0
        kept: list[Message | _End] = []
        dropped = 0
        while not self._queue.empty():
            item = self._queue.get_nowait()
            if isinstance(item, Message) and item.generation < generation:
                dropped += 1
            else:
                kept.append(item)
        for item in kept:
            self._queue.put_nowait(item)
        return dropped

    def end(self, exc: BaseException | None) -> None:
        if self._ended:
            return
        self._ended, self._end_exc = True, exc
        if self._queue.empty():
            self._queue.put_nowait(_End())
