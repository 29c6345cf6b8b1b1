"""The user API: `Client` (send, subscribe, transactions, disconnect) over a replaceable
`StompConnection`.

`Client` never talks to a socket itself. It keeps what must survive a reconnect in the ledger
(un-receipted sends, active subscriptions) and reaches the broker through `self._conn`. On a plain
tcp:// URL a lost connection ends the client: pending sends fail and subscriptions raise
ConnectionLost. On a failover: URL (design.md section 5) `_on_lost` starts the `Reconnector`;
calls wait at the gate (at most `timeout` ms) meanwhile; the new connection gets the replay of
`replay.plan_replay` (re-SUBSCRIBE, then every un-receipted SEND with its original producer id).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
import ssl
from collections.abc import Callable
from typing import Any

from transports.client.connection import StompConnection
from transports.client.dialer import Dialer
from transports.client.errors import BrokerRefused, ClientError, ConnectionLost
from transports.client.failover import ConnectionGate, Reconnector
from transports.client.ledger import (
    PendingSends,
    ProducerIds,
    SubscriptionBook,
)
from transports.client.replay import Verdict, is_transient_refusal, judge_loss, plan_replay, resubscribe_frame
from transports.client.sending import Sending
from transports.client.state import (
    ConnectionEvent,
    ConnectionState,
    EventCallback,
    EventStream,
    StateCallback,
    StateListeners,
)
from transports.client.stats import ClientStats
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

class Client(Sending):
    """A STOMP client session. Make one with `connect(url)`."""

    def __init__(self, dialer: Dialer, *, producer_ids: ProducerIds | None = None,
                 max_pending_sends: int = 10_000) -> None:
        self._dialer = dialer
        self.failover = dialer.url.failover
        self._timeout_ms = dialer.url.options.timeout if self.failover else -1
        self._conn: StompConnection | None = None
        self._states = StateListeners()
        self._gate = ConnectionGate()
        self._reconnector = Reconnector(dialer, self._states, self._reattach, self._give_up)
        self.producer_ids = producer_ids or ProducerIds()
        self.pending_sends = PendingSends(limit=max_pending_sends)
        self.subscriptions = SubscriptionBook()
        self.stats = ClientStats()
        self.generation = 0  # numbers the connections; a message or transaction names its own
        self._tx_ids = itertools.count(1)
        self._transactions: dict[str, Transaction] = {}
        self._progress = False  # a RECEIPT or MESSAGE came on this connection
        self._untracked_sends = 0  # sends without any receipt written on this connection
        self._error_streak = 0

    # -- lifecycle --------------------------------------------------------------------------

    @property
    def state(self) -> ConnectionState:
        return self._states.state

    @property
    def connection(self) -> StompConnection | None:
        return self._conn

    @property
    def last_outage(self) -> float | None:
        """Seconds from the last lost connection to the next CONNECTED (failover clients)."""
        return self._reconnector.last_outage

    def on_state(self, callback: StateCallback) -> Callable[[], None]:
        """Call `callback(state)` on every state change; returns an unregister function."""
        return self._states.add(callback)

    def on_event(self, callback: EventCallback) -> Callable[[], None]:
        """Call `callback(ConnectionEvent)` on every event (each reconnect attempt included)."""
        return self._states.add_event(callback)

    def events(self) -> EventStream:
        """`async for event in client.events():` until FAILED or CLOSED."""
        return EventStream(self._states)

    async def open(self) -> Client:
        self._states.set(ConnectionState.CONNECTING)
        try:
            conn = await self._dialer.dial()
        except BaseException:
            self._states.set(ConnectionState.CLOSED)
            raise
        self._attach(conn)
        return self

    def _attach(self, conn: StompConnection) -> None:
        self.generation += 1
        self._conn, self._progress, self._untracked_sends = conn, False, 0
        conn.start(self._on_message, self._on_lost)
        if self.generation > 1:
            self._replay(conn)
        log.log(logging.INFO if self.generation > 1 else logging.DEBUG, "connected to %s:%d", *conn.address)
        self._states.emit(ConnectionEvent(ConnectionState.CONNECTED, broker=conn.address, tls=conn.tls))
        self._gate.open()

    def _reattach(self, conn: StompConnection) -> None:
        self.stats.reconnects += 1
        self._attach(conn)

    def _replay(self, conn: StompConnection) -> None:
        """Write the plan on `conn` synchronously, before any waiting caller wakes, so the resent
        frames precede every new one. A write that fails means this link died too: its own loss
        report starts the next reconnect, and the ledger still holds everything."""
        plan = plan_replay(self.subscriptions, self.pending_sends.in_order())
        dropped = sum(sub.drop_stale(self.generation) for sub in self.subscriptions)
        try:
            for sub_id, frame in plan.subscribes:
                sub = self.subscriptions.get(sub_id)
                if sub is not None:
                    self._subscribe_on(conn, sub, frame)
            for entry in plan.resends:
                self._transmit(conn, entry)
                self.stats.resent += 1
        except ConnectionLost:
            return
        log.info("replayed %d subscription(s) and %d un-receipted send(s); dropped %d unacked local "
                 "message(s) the broker will redeliver", len(plan.subscribes), len(plan.resends), dropped)

    def _on_lost(self, exc: ConnectionLost) -> None:
        if self.state.terminal:
            return
        self._gate.close()
        address = self._conn.address if self._conn is not None else None
        log.log(logging.WARNING if self.failover else logging.INFO, "connection lost: %s", exc)
        self._states.emit(ConnectionEvent(ConnectionState.DISCONNECTED, broker=address, reason=str(exc)))
        if not self.failover:
            self._shut(exc)
            return
        ended_by_error = exc.broker_error is not None
        self._error_streak = (1 if self._progress else self._error_streak + 1) if ended_by_error else 0
        if judge_loss(exc.broker_error, self._error_streak) is Verdict.FAIL:
            self._give_up(exc)
            return
        self._reconnector.start(avoid=address)

    def _give_up(self, exc: ClientError) -> None:
        log.error("giving up: %s", exc)
        self._gate.fail(exc)
        self._shut(exc, ConnectionState.FAILED)

    def _shut(self, exc: ClientError | None, final: ConnectionState = ConnectionState.CLOSED) -> None:
        self._gate.fail(exc or ConnectionLost("client closed"))
        self.pending_sends.fail_all(exc or ConnectionLost("client closed"))
        for sub in self.subscriptions:
            sub.end(exc)
            self.subscriptions.remove(sub.id)
        reason = str(exc) if exc is not None and final is ConnectionState.FAILED else None
        self._states.emit(ConnectionEvent(final, reason=reason))

    def _current(self) -> StompConnection | None:
        conn = self._conn
        if conn is not None and conn.is_open and self.state is ConnectionState.CONNECTED:
            return conn
        return None

    def _require(self) -> StompConnection:
        conn = self._current()
        if conn is not None:
            return conn
        if self._gate.error is not None:
            raise self._gate.error
        if self._conn is not None and self._conn.lost is not None:
            raise self._conn.lost
        raise ConnectionLost(f"client is {self.state.value}")

    def _deadline(self) -> float | None:
        if self._timeout_ms <= 0:
            return None
        return asyncio.get_running_loop().time() + self._timeout_ms / 1000.0

    async def _ready(self, deadline: float | None) -> StompConnection:
        """The current connection; a failover client waits for one (until `deadline`)."""
        for _ in itertools.count():
            conn = self._current()
            if conn is not None:
                return conn
            if not self.failover or self._gate.error is not None:
                return self._require()  # raises
            if self.state is ConnectionState.CONNECTED:
                await asyncio.sleep(0.001)  # the link just died; its loss report runs next
                continue
            await self._gate.wait(deadline, self._timeout_ms, self._states.last_event.describe)
        raise AssertionError("unreachable")

    async def disconnect(self, timeout: float = 5.0) -> None:
        """Wait (up to `timeout` s, through reconnects) until every tracked send is receipted, then
        DISCONNECT with a receipt (so every frame sent before was handled) and close. Raises
        ClientError if some send was refused or not receipted, or the client had failed."""
        if self.state is ConnectionState.CLOSED:
            return
        problems: list[str] = []
        if self._gate.error is None and len(self.pending_sends):
            try:
                async with asyncio.timeout(timeout):
                    await self.pending_sends.wait_empty()
            except TimeoutError:
                problems.append(f"{len(self.pending_sends)} send(s) still await a receipt after {timeout}s")
        failure = self._gate.error if self.state is ConnectionState.FAILED else None
        await self._reconnector.stop()
        conn = self._current()
        if conn is not None:
            problem = await conn.disconnect(timeout)
            # A failover client's tracked sends are all receipted by now; a DISCONNECT receipt lost
            # with the link only matters if untracked (non-persistent, unreceipted) sends went out.
            if problem is not None and (not self.failover or self._untracked_sends):
                problems.append(f"no RECEIPT for DISCONNECT ({problem}): frames sent without a receipt "
                                "may be lost")
        elif self._conn is not None:
            await self._conn.close()
        self._shut(None)
        if self.stats.refused:
            problems.append(f"{self.stats.refused} send(s) refused, first: {self.stats.first_refusal}")
        if failure is not None:
            raise failure
        if problems:
            raise ConnectionLost("; ".join(problems))

    async def close(self) -> None:
        """Close at once without DISCONNECT (the broker sees a dropped connection)."""
        await self._reconnector.stop()
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
        wait for the broker's receipt. The local queue holds up to `prefetch` (default 1000). A
        failover client that is reconnecting subscribes it as soon as it is connected again."""
        conn = self._current()
        if conn is None and (not self.failover or self._gate.error is not None):
            self._require()  # raises
        sub_id = self.subscriptions.new_id()
        frame = subscribe_frame(sub_id, destination, ack=ack, prefetch=prefetch, selector=selector,
                                durable_name=durable_name, headers=headers)
        sub = Subscription(self, sub_id, frame, prefetch or DEFAULT_QUEUE_BOUND)
        self.subscriptions.add(sub)
        sub.ready = asyncio.get_running_loop().create_future()
        sub.ready.add_done_callback(lambda f: f.cancelled() or f.exception())  # mark a failure seen
        if conn is not None:
            self._subscribe_on(conn, sub, resubscribe_frame(frame))
        return sub

    def _subscribe_on(self, conn: StompConnection, sub: Subscription, frame: Frame) -> None:
        receipt = conn.request(frame)
        receipt.add_done_callback(functools.partial(self._subscribed, sub))

    def _subscribed(self, sub: Subscription, receipt: asyncio.Future[Frame]) -> None:
        exc = ConnectionLost("receipt wait cancelled") if receipt.cancelled() else receipt.exception()
        if exc is None:
            self._progress = True
            if sub.ready is not None and not sub.ready.done():
                sub.ready.set_result(receipt.result())
            return
        refused = isinstance(exc, BrokerRefused) and not is_transient_refusal(str(exc))
        if self.failover and not self.state.terminal and not refused:
            return  # re-subscribed by the replay on the next connection
        if refused:
            self.subscriptions.remove(sub.id)
            sub.end(exc)
        if sub.ready is not None and not sub.ready.done():
            sub.ready.set_exception(exc)

    async def _unsubscribe(self, sub: Subscription) -> None:
        self.subscriptions.remove(sub.id)
        conn = self._current()
        if conn is None:
            return  # no broker holds it now, and the replay will not re-subscribe it
        try:
            await conn.request(Frame("UNSUBSCRIBE", {"id": sub.id}))
        except ConnectionLost:
            if not self.failover:
                raise

    async def _on_message(self, frame: Frame) -> None:
        self._progress = True
        sub = self.subscriptions.get(frame.headers.get("subscription"))
        if sub is None:
            # Raced with UNSUBSCRIBE; an unacknowledged message is redelivered by the broker.
            log.debug("dropping MESSAGE for unknown subscription %r", frame.headers.get("subscription"))
            return
        await sub.deliver(frame, self.generation)

    async def _settle(self, sub: Subscription, message: Message, command: str, *, receipt: bool,
                      transaction: str | None) -> None:
        tx = self._transactions.get(transaction) if transaction is not None else None
        conn = self._current() if self.failover else self._require()
        if message.generation != self.generation or conn is None or (tx is not None and tx.cut):
            # Its connection is gone, and with it the broker's record of the delivery: the broker
            # redelivers the message (flagged redelivered), so this ACK/NACK has nothing to settle.
            self.stats.stale_acks += 1
            log.debug("ignoring %s of %s: delivered before a failover", command, message.message_id)
            return
        frame = ack_frame(command, message.headers, version=conn.version, sub_id=sub.id,
                          transaction=transaction)
        if receipt:
            await conn.request(frame)
        else:
            conn.write(frame)
            await self._drain(self.generation)

    # -- transactions -----------------------------------------------------------------------

    def transaction(self) -> Transaction:
        """`async with client.transaction() as tx:` BEGIN; COMMIT on success, ABORT on an exception.
        A failover during the transaction makes COMMIT raise TransactionRolledBack."""
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
    login: str | None = None, passcode: str | None = None,
    heartbeat: tuple[int, int] = (0, 0),
    client_id: str | None = None,
    connect_timeout: float = 5.0, max_pending_sends: int = 10_000,
    tls: ssl.SSLContext | None = None,
) -> _Connecting:
    """Open a client: `async with connect("tcp://127.0.0.1:61616") as c:` or `c = await connect(...)`.

    `url` is `tcp://` or `ssl://HOST:PORT`, or `failover:(tcp://...,ssl://...)?options` (transports.url,
    docs/client.md); `tls` is the context for ssl:// brokers (default: the system's CAs). A failover
    client connects to the first reachable broker in `server_order` (startup back-off), and after a
    lost connection reconnects, re-subscribes and resends every un-receipted send; a plain one ends
    on a lost connection. `heartbeat` is (we send every ms, we want the broker's every ms), 0 = off.
    `max_pending_sends` bounds the sends kept until their receipt. Raises UrlError for a bad URL,
    ConnectFailed when no broker could be reached, ClientError when the broker refused.
    """
    from transports.url import parse_url

    dialer = Dialer(parse_url(url), login=login, passcode=passcode, heartbeat=heartbeat, client_id=client_id,
                    connect_timeout=connect_timeout, tls=tls)
    return _Connecting(Client(dialer, max_pending_sends=max_pending_sends))
