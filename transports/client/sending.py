"""The sending half of `Client`: SEND with a receipt, tracked without one, or in a transaction.

Every persistent or receipted send enters the bounded ledger (`PendingSends`) before it is
written, and leaves it only when its RECEIPT arrives or the broker refuses it for good; so what a
failover must resend is exactly the ledger (`replay.plan_replay`). Transactional sends are never
tracked: a failover ends the transaction on the broker (see `transaction.py`).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from typing import TYPE_CHECKING, Any

from transports.client.errors import BrokerRefused, ClientError, ConnectionLost
from transports.client.ledger import PendingSend, merge_headers
from transports.client.replay import is_transient_refusal
from transports.stomp.commands import PRODUCER_ID_HEADER
from transports.stomp.frame import Frame

if TYPE_CHECKING:
    from transports.client.connection import StompConnection
    from transports.client.ledger import PendingSends, ProducerIds
    from transports.client.state import ConnectionState
    from transports.client.stats import ClientStats
    from transports.client.transaction import Transaction

log = logging.getLogger(__name__)

TEXT_CONTENT_TYPE = "text/plain;charset=utf-8"


class Sending:
    """Mixed into `Client`; uses its ledger, stats, gate and connection."""

    if TYPE_CHECKING:  # provided by Client
        failover: bool
        generation: int
        pending_sends: PendingSends
        producer_ids: ProducerIds
        stats: ClientStats
        _conn: StompConnection | None
        _progress: bool
        _timeout_ms: int
        _transactions: dict[str, Transaction]
        _untracked_sends: int

        @property
        def state(self) -> ConnectionState: ...

        def _deadline(self) -> float | None: ...

        async def _ready(self, deadline: float | None) -> StompConnection: ...

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
        message (durably, if persistent) and raises ClientError if the broker refused it. Without,
        it returns once the bytes are written; a persistent send is still tracked (with a receipt
        the caller does not wait for) so that a failover resends it and `disconnect()` can say
        whether it arrived. While a failover client reconnects, a send waits up to `timeout` ms."""
        frame = self._send_frame(destination, body, headers, persistent, transaction)
        if transaction is not None:
            await self._send_in_transaction(frame, transaction, receipt)
        elif receipt or persistent:
            entry = await self._track(frame, awaited=receipt)
            if receipt:
                try:
                    await entry.future
                except asyncio.CancelledError:
                    entry.awaited = False  # still tracked and resent; nobody reads its outcome
                    raise
            else:
                await self._drain(entry.generation)
        else:
            conn = await self._ready(self._deadline())
            conn.write(frame)
            self._untracked_sends += 1
            await self._drain(self.generation)
        self.stats.sent += 1
        return frame.headers[PRODUCER_ID_HEADER]

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

    async def _track(self, frame: Frame, *, awaited: bool) -> PendingSend:
        """Enter `frame` in the ledger and write it. Waits while the ledger is full (flow control)
        and, on a failover client, while there is no connection; `timeout` bounds both."""
        deadline = self._deadline()
        while True:
            if self.pending_sends.full:
                now = asyncio.get_running_loop().time()
                remaining = None if deadline is None else max(0.0, deadline - now)
                try:
                    await asyncio.wait_for(self.pending_sends.wait_for_room(), remaining)
                except TimeoutError:
                    raise ClientError(f"{self.pending_sends.limit} sends await a receipt; no room "
                                      f"within timeout={self._timeout_ms} ms") from None
            conn = await self._ready(deadline)
            if not self.pending_sends.full:
                break
        entry = self.pending_sends.add(frame, asyncio.get_running_loop(), awaited=awaited)
        self._transmit(conn, entry)
        return entry

    def _transmit(self, conn: StompConnection, entry: PendingSend) -> None:
        """Write `entry` on `conn` and settle it from that connection's receipt (replay calls
        this again for each pending entry on a new connection)."""
        entry.transmissions += 1
        entry.generation = self.generation
        receipt = conn.request(entry.frame)
        receipt.add_done_callback(functools.partial(self._settle_send, entry))

    def _settle_send(self, entry: PendingSend, receipt: asyncio.Future[Frame]) -> None:
        if entry.future.done():
            return
        exc = ConnectionLost("receipt wait cancelled") if receipt.cancelled() else receipt.exception()
        if exc is None:
            self._progress = True
            self.stats.receipted += 1
            entry.future.set_result(receipt.result())
            self.pending_sends.discard(entry)
            return
        refused = isinstance(exc, BrokerRefused)
        if self.failover and not self.state.terminal and (not refused or is_transient_refusal(str(exc))):
            return  # stays in the ledger: the replay on the next connection resends it
        if refused:
            self.stats.refused += 1
            self.stats.first_refusal = self.stats.first_refusal or str(exc)
        entry.future.set_exception(exc)
        if not entry.awaited:
            entry.future.exception()  # nobody awaits it; disconnect() reports the refusal
        self.pending_sends.discard(entry)

    async def _drain(self, generation: int) -> None:
        """Flow control on the connection just written to. On a failover client a link that died
        meanwhile is not this call's error: the ledger resends what needs resending."""
        conn = self._conn
        if conn is None or generation != self.generation:
            return
        try:
            await conn.drain()
        except ConnectionLost:
            if not self.failover:
                raise

    async def _send_in_transaction(self, frame: Frame, tx_id: str, receipt: bool) -> None:
        """Transactional sends are never resent: a failover ends the transaction on the broker, so
        after one they are dropped here and the COMMIT raises TransactionRolledBack."""
        tx = self._transactions.get(tx_id)
        conn = await self._ready(self._deadline())
        if tx is not None and tx.cut:
            log.debug("dropping SEND in transaction %s: it was cut by a failover", tx_id)
            return
        try:
            if receipt:
                await conn.request(frame)
            else:
                conn.write(frame)
                await conn.drain()
        except ConnectionLost:
            if not (self.failover and tx is not None):
                raise

