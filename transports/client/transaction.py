"""STOMP transactions: BEGIN, then COMMIT on success or ABORT on an exception (STOMP 1.2 "BEGIN")."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

from transports.client.errors import ClientError
from transports.stomp.frame import Frame

if TYPE_CHECKING:
    from transports.client.client import Client
    from transports.client.subscription import Message


class Transaction:
    """A STOMP transaction. Its sends default to no per-message receipt: the COMMIT's receipt
    (awaited) is what says the broker took them all."""

    def __init__(self, client: Client, tx_id: str) -> None:
        self.client = client
        self.id = tx_id

    async def __aenter__(self) -> Transaction:
        self.client._require().write(Frame("BEGIN", {"transaction": self.id}))
        return self

    async def __aexit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            await self.client._request(Frame("COMMIT", {"transaction": self.id}))
            return
        conn = self.client.connection
        if conn is not None and conn.is_open:
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
