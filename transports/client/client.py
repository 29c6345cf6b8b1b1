"""The user API: `Client` (send, subscribe, transactions, disconnect) over a replaceable
`StompConnection`.

`Client` never talks to a socket itself. It keeps what must survive a reconnect in the ledger
(un-receipted sends, active subscriptions) and reaches the broker through `self._conn`, which the
failover layer (next issue) will replace after a reconnect and then replay the ledger on. Today a
lost connection ends the client: pending sends fail and subscriptions raise ConnectionLost.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from transports.client.connection import StompConnection
from transports.client.errors import ClientError, ConnectionLost
from transports.client.ledger import (
    PRODUCER_ID_HEADER,
    PendingSend,
    PendingSends,
    ProducerIds,
    SubscriptionBook,
    merge_headers,
)
from transports.client.state import ConnectionState, StateCallback, StateListeners
from transports.client.subscription import (
    DEFAULT_QUEUE_BOUND,
    Message,
    Subscription,
    ack_frame,
    subscribe_frame,
)
from transports.client.transaction import Transaction
from transports.stomp.frame import Frame

log = logging.getLogger(__name__)

Dial = Callable[[], Awaitable[StompConnection]]
TEXT_CONTENT_TYPE = "text/plain;charset=utf-8"


class Client:
    """A STOMP client session. Make one with `connect(url)`."""

    def __init__(self, dial: Dial, *, producer_ids: ProducerIds | None = None,
                 max_pending_sends: int = 10_000) -> None:
        self._dial = dial
        self._conn: StompConnection | None = None
        self._states = StateListeners()
        self.producer_ids = producer_ids or ProducerIds()
        self.pending_sends = PendingSends(limit=max_pending_sends)
        self.subscriptions = SubscriptionBook()
        self._tx_ids = itertools.count(1)

    # -- lifecycle --------------------------------------------------------------------------

    @property
    def state(self) -> ConnectionState:
        return self._states.state

    @property
    def connection(self) -> StompConnection | None:
        return self._conn

    def on_state(self, callback: StateCallback) -> Callable[[], None]:
        """Call `callback(state)` on every state change; returns an unregister function."""
        return self._states.add(callback)

    async def open(self) -> Client:
        self._states.set(ConnectionState.CONNECTING)
        try:
            conn = await self._dial()
        except BaseException:
            self._states.set(ConnectionState.CLOSED)
            raise
        self._attach(conn)
        return self

    def _attach(self, conn: StompConnection) -> None:
        self._conn = conn
        conn.start(self._on_message, self._on_lost)
        self._states.set(ConnectionState.CONNECTED)

    def _on_lost(self, exc: ConnectionLost) -> None:
        # The seam for failover: a reconnecting subclass keeps the ledger and re-dials here.
        self._states.set(ConnectionState.DISCONNECTED)
        self._shut(exc)

    def _shut(self, exc: ConnectionLost | None) -> None:
        self.pending_sends.fail_all(exc or ConnectionLost("client closed"))
        for sub in self.subscriptions:
            sub.end(exc)
            self.subscriptions.remove(sub.id)
        self._states.set(ConnectionState.CLOSED)

    def _require(self) -> StompConnection:
        conn = self._conn
        if conn is None or self.state is not ConnectionState.CONNECTED:
            raise ConnectionLost(f"client is {self.state.value}")
        if conn.lost is not None:
            raise conn.lost
        return conn

    async def disconnect(self, timeout: float = 5.0) -> None:
        """DISCONNECT with a receipt, so every frame sent before was handled by the broker; then
        close. Raises ConnectionLost if that receipt did not arrive (some sends may be lost)."""
        conn = self._conn
        if conn is None or self.state is ConnectionState.CLOSED:
            return
        problem = await conn.disconnect(timeout)
        self._shut(None)
        if problem is not None:
            raise ConnectionLost(f"no RECEIPT for DISCONNECT ({problem}): "
                                 "frames sent without a receipt may be lost")

    async def close(self) -> None:
        """Close at once without DISCONNECT (the broker sees a dropped connection)."""
        if self._conn is not None:
            await self._conn.close()
        if self.state is not ConnectionState.CLOSED:
            self._shut(None)

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            await self.disconnect()
            return
        with contextlib.suppress(ClientError, OSError):
            await self.disconnect(timeout=1.0)
        await self.close()

    # -- sending ----------------------------------------------------------------------------

    async def send(
        self,
        destination: str,
        body: bytes | str,
        *,
        headers: dict[str, Any] | None = None,
        persistent: bool = False,
        receipt: bool = True,
        transaction: str | None = None,
    ) -> str:
        """SEND; returns its producer id. With `receipt` it returns once the broker receipted the
        message (durably, if persistent) and raises ClientError if the broker answers ERROR;
        without, it returns once the bytes are written, waiting while the socket is congested."""
        frame = self._send_frame(destination, body, headers, persistent, transaction)
        conn = self._require()
        if not receipt:
            conn.write(frame)
            await conn.drain()
            return frame.headers[PRODUCER_ID_HEADER]
        entry = self.pending_sends.add(frame, asyncio.get_running_loop())
        try:
            self._transmit(conn, entry)
            await entry.future
        finally:
            self.pending_sends.discard(entry)
        return entry.producer_id

    def _send_frame(self, destination: str, body: bytes | str, headers: dict[str, Any] | None,
                    persistent: bool, transaction: str | None) -> Frame:
        ours = {"destination": destination, PRODUCER_ID_HEADER: self.producer_ids.next()}
        if persistent:
            ours["persistent"] = "true"  # ActiveMQ: non-persistent unless asked (design.md s4)
        if transaction is not None:
            ours["transaction"] = transaction
        extra = dict(headers or {})
        if isinstance(body, str):
            body = body.encode("utf-8")
            extra.setdefault("content-type", TEXT_CONTENT_TYPE)
        return Frame("SEND", merge_headers(ours, extra), body)

    def _transmit(self, conn: StompConnection, entry: PendingSend) -> None:
        """Write `entry` on `conn` and settle its future from that connection's receipt. The
        failover layer calls this again for each pending entry on the new connection."""
        entry.transmissions += 1
        receipt = conn.request(entry.frame)
        receipt.add_done_callback(functools.partial(self._settle_send, entry))

    def _settle_send(self, entry: PendingSend, receipt: asyncio.Future[Frame]) -> None:
        exc = ConnectionLost("receipt wait cancelled") if receipt.cancelled() else receipt.exception()
        if entry.future.done():
            return
        if exc is None:
            entry.future.set_result(receipt.result())
        else:
            entry.future.set_exception(exc)

    async def _request(self, frame: Frame) -> Frame:
        return await self._require().request(frame)

    # -- subscribing ------------------------------------------------------------------------

    def subscribe(
        self,
        destination: str,
        *,
        ack: str = "auto",
        prefetch: int | None = None,
        selector: str | None = None,
        durable_name: str | None = None,
        headers: dict[str, Any] | None = None,
    ) -> Subscription:
        """SUBSCRIBE and return the subscription at once; `await` it (or `sub.wait_ready()`) to
        wait for the broker's receipt. The local queue holds up to `prefetch` (default 1000)."""
        conn = self._require()
        sub_id = self.subscriptions.new_id()
        frame = subscribe_frame(sub_id, destination, ack=ack, prefetch=prefetch, selector=selector,
                                durable_name=durable_name, headers=headers)
        sub = Subscription(self, sub_id, frame, prefetch or DEFAULT_QUEUE_BOUND)
        self.subscriptions.add(sub)
        sub.ready = conn.request(Frame("SUBSCRIBE", dict(frame.headers)))
        # Mark a failure as seen: it also ends the connection, which `sub` reports itself.
        sub.ready.add_done_callback(lambda f: f.exception())
        return sub

    async def _unsubscribe(self, sub: Subscription) -> None:
        self.subscriptions.remove(sub.id)
        conn = self._conn
        if conn is not None and conn.is_open:
            await conn.request(Frame("UNSUBSCRIBE", {"id": sub.id}))

    async def _on_message(self, frame: Frame) -> None:
        sub = self.subscriptions.get(frame.headers.get("subscription"))
        if sub is None:
            # Raced with UNSUBSCRIBE; an unacknowledged message is redelivered by the broker.
            log.debug("dropping MESSAGE for unknown subscription %r", frame.headers.get("subscription"))
            return
        await sub.deliver(frame)

    async def _settle(self, sub: Subscription, message: Message, command: str, *, receipt: bool,
                      transaction: str | None) -> None:
        conn = self._require()
        frame = ack_frame(command, message.headers, version=conn.version, sub_id=sub.id,
                          transaction=transaction)
        if receipt:
            await conn.request(frame)
        else:
            conn.write(frame)
            await conn.drain()

    # -- transactions -----------------------------------------------------------------------

    def transaction(self) -> Transaction:
        """`async with client.transaction() as tx:` BEGIN; COMMIT on success, ABORT on an exception."""
        return Transaction(self, f"tx-{self.producer_ids.client_uuid[:8]}-{next(self._tx_ids)}")


class _Connecting:
    """What `connect()` returns: `await` it for a Client, or use it as `async with`."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def __await__(self):  # type: ignore[no-untyped-def]
        return self._client.open().__await__()

    async def __aenter__(self) -> Client:
        return await self._client.open()

    async def __aexit__(self, exc_type: object, exc: object, tb: object) -> None:
        await self._client.__aexit__(exc_type, exc, tb)


def connect(
    url: str,
    *,
    login: str | None = None,
    passcode: str | None = None,
    heartbeat: tuple[int, int] = (0, 0),
    client_id: str | None = None,
    connect_timeout: float = 5.0,
) -> _Connecting:
    """Open a client: `async with connect("tcp://127.0.0.1:61616") as c:` or `c = await connect(...)`.

    `url` is `tcp://HOST:PORT` or `failover:(tcp://...,...)?options` (transports.url). For a
    failover URL this connects to the first reachable broker in `server_order`, with ActiveMQ's
    startup back-off and attempt limit. Reconnecting after an established connection drops,
    re-subscribing and resending un-receipted sends are the next issue's failover layer; until
    then a lost connection ends the client (pending sends and subscriptions raise ConnectionLost).
    `heartbeat` is (we send every ms, we want the broker's every ms), 0 = off. Raises UrlError for
    a bad URL, ConnectFailed when no broker could be reached, ClientError when the broker refused.
    """
    from transports.client.dialer import Dialer
    from transports.url import parse_url

    dialer = Dialer(parse_url(url), login=login, passcode=passcode, heartbeat=heartbeat, client_id=client_id,
                    connect_timeout=connect_timeout)
    return _Connecting(Client(dialer))
