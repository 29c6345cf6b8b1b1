"""STOMP transactions (STOMP 1.2, "BEGIN"/"COMMIT"/"ABORT"): SENDs and ACK/NACKs held until COMMIT.

COMMIT persists every persistent SEND and every ACK of a stored message in one atomic store write,
so after a crash either all of a transaction is visible or none of it. ABORT (also on DISCONNECT or
connection loss) drops the held SENDs; held ACKs are forgotten, so those messages stay unacked.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from broker.engine.errors import ClientError
from broker.engine.message import Message
from transports.memory import Share

if TYPE_CHECKING:
    from broker.engine.subscription import Subscription

MAX_TRANSACTIONS = 100  # open at once, per session
MAX_OPS = 10_000  # frames held by one transaction
MAX_BYTES = 64 * 1024 * 1024


@dataclass(slots=True)
class Transaction:
    id: str
    sends: list[Message] = field(default_factory=list)
    acks: list[tuple[Subscription, str, bool]] = field(default_factory=list)  # (subscription, ack id, nack)
    bytes: int = 0

    def _check_room(self, size: int) -> None:
        if len(self.sends) + len(self.acks) >= MAX_OPS or self.bytes + size > MAX_BYTES:
            raise ClientError("transaction too large",
                              f"transaction {self.id[:100]!r} exceeds {MAX_OPS} frames or {MAX_BYTES} bytes")

    def add_send(self, message: Message) -> None:
        self._check_room(message.size)
        self.sends.append(message)
        self.bytes += message.size

    def add_ack(self, subscription: Subscription, ack_id: str, nack: bool) -> None:
        self._check_room(0)
        self.acks.append((subscription, ack_id, nack))


class Transactions:
    """The open transactions of one session; their SENDs count in the connection's memory share
    until COMMIT or ABORT (docs/memory.md)."""

    def __init__(self, memory: Share) -> None:
        self._open: dict[str, Transaction] = {}
        self.memory = memory

    def begin(self, tx_id: str | None) -> None:
        if not tx_id:
            raise ClientError("missing transaction", "BEGIN requires a transaction header")
        if tx_id in self._open:
            raise ClientError("duplicate transaction", f"transaction {tx_id[:100]!r} is already open")
        if len(self._open) >= MAX_TRANSACTIONS:
            raise ClientError("too many transactions", f"at most {MAX_TRANSACTIONS} open per connection")
        self._open[tx_id] = Transaction(tx_id)

    def get(self, tx_id: str | None) -> Transaction:
        transaction = self._open.get(tx_id or "")
        if transaction is None:
            raise ClientError("unknown transaction", f"transaction {str(tx_id)[:100]!r} is not open")
        return transaction

    def add_send(self, transaction: Transaction, message: Message) -> None:
        transaction.add_send(message)
        self.memory.charge(message.size)

    def end(self, tx_id: str | None) -> Transaction:
        transaction = self.get(tx_id)
        del self._open[transaction.id]
        self.memory.release(transaction.bytes)
        return transaction

    def abort_all(self) -> None:
        held = sum(t.bytes for t in self._open.values())
        self._open.clear()
        if held:
            self.memory.release(held)

    def __len__(self) -> int:
        return len(self._open)
