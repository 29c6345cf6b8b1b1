"""STOMP transactions: BEGIN, then COMMIT on success or ABORT on an exception (STOMP 1.2 "BEGIN").

A transaction lives on one connection: the broker aborts it when that connection ends (STOMP 1.2,
design.md section 4). So a failover client never replays a transaction's frames. Once the
connection it began on is gone the transaction is `cut`: later sends and acks in it are dropped,
ABORT is a no-op, and COMMIT raises TransactionRolledBack (ActiveMQ's
TransactionRolledBackException) instead of committing the part sent after the failover. A link
lost while COMMIT awaits its receipt raises TransactionInDoubt: the broker may have committed.
"""

from __future__ import annotations

import contextlib
import logging
from typing import TYPE_CHECKING, Any

from transports.client.errors import ClientError, ConnectionLost, TransactionInDoubt, TransactionRolledBack
from transports.stomp.frame import Frame

if TYPE_CHECKING:
    from transports.client.client import Client
    from transports.client.subscription import Message

log = logging.getLogger(__name__)


class Transaction:
    """A STOMP transaction. Its sends default to no per-message receipt: the COMMIT's receipt
    (awaited) is what says the broker took them all."""

    def __init__(self, client: Client, tx_id: str) -> None:
        self.client = client
        self.id = tx_id
        self.generation: int | None = None  # the client connection BEGIN went out on

    @property
    def cut(self) -> bool:
        """The connection this transaction began on is gone: the broker has aborted it."""
        conn = self.client.connection
        return self.generation != self.client.generation or conn is None or conn.lost is not None

    async def __aenter__(self) -> Transaction:
        conn = await self.client._ready(self.client._deadline())
        conn.write(Frame("BEGIN", {"transaction": self.id}))
        self.generation = self.client.generation
        self.client._transactions[self.id] = self
        return self

    async def __aexit__(self, exc_type: object, exc: object, tb: object) -> None:
        try:
            if exc_type is None:
                await self.commit()
            else:
                self._abort()
        finally:
            self.client._transactions.pop(self.id, None)

    async def commit(self) -> None:
        if self.cut:
            raise TransactionRolledBack(f"transaction {self.id} was rolled back: the connection failed "
                                        "over before COMMIT; nothing of it was committed")
        conn = self.client._require()
        try:
            await conn.request(Frame("COMMIT", {"transaction": self.id}))
        except ConnectionLost as exc:
            if not self.client.failover:
                raise
            raise TransactionInDoubt(f"transaction {self.id}: the connection was lost while COMMIT "
                                     f"awaited its receipt ({exc}); the broker may or may not have "
                                     "committed") from exc

    def _abort(self) -> None:
        conn = self.client.connection
        if self.cut or conn is None or not conn.is_open:
            return  # the broker already aborted it with its connection
        with contextlib.suppress(ClientError, OSError):
            conn.write(Frame("ABORT", {"transaction": self.id}))

    async def send(self, destination: str, body: bytes | str, *, headers: dict[str, Any] | None = None,
                   persistent: bool = False, receipt: bool = False) -> str:
        return await self.client.send(destination, body, headers=headers, persistent=persistent,
                                      receipt=receipt, transaction=self.id)

    async def ack(self, message: Message) -> None:
        await self._settle(message, "ACK")

    async def nack(self, message: Message) -> None:
        await self._settle(message, "NACK")

    async def _settle(self, message: Message, command: str) -> None:
        await message._sub.settle(message, command, transaction=self.id)
