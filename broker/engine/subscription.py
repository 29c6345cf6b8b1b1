"""One SUBSCRIBE: its ack mode, prefetch window, selector, and the messages it has not acked yet.

Ack modes (STOMP 1.2, "SUBSCRIBE ack Header"): `auto` = consumed when written; `client` = an ACK or
NACK covers every message delivered to this subscription up to and including the one named
(cumulative); `client-individual` = only the one named.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from broker.engine.message import Message
from transports.stomp.frame import Frame

if TYPE_CHECKING:
    from broker.engine.queue import Queue

ACK_MODES = ("auto", "client", "client-individual")


class Owner(Protocol):
    """What a subscription needs from its session."""

    version: str

    @property
    def writable(self) -> bool: ...

    def next_ack_id(self, subscription: Subscription) -> str: ...

    def forget_ack_id(self, ack_id: str) -> None: ...

    def send(self, frame: Frame) -> None: ...

    def send_shared(self, message: Message, headers: dict[str, str]) -> bool:
        """Write a fan-out copy from its message's shared frame plus `headers`; False: not done,
        send a Frame."""
        ...


class Subscription:
    def __init__(
        self,
        owner: Owner,
        sub_id: str,
        destination: str,
        queue: Queue,
        ack: str = "auto",
        prefetch: int = 1000,
        selector: Callable[[Message], bool | None] | None = None,
        durable_key: str | None = None,
    ) -> None:
        self.owner = owner
        self.id = sub_id
        self.destination = destination
        self.queue = queue
        self.ack = ack
        self.prefetch = prefetch
        self.selector = selector
        self.durable_key = durable_key
        self.active = True
        self.exclusive = False  # activemq.exclusive (broker/engine/groups.py)
        self.unacked: OrderedDict[str, Message] = OrderedDict()  # ack id -> message, delivery order
        self._by_message_id: dict[str, str] = {}

    def ready(self) -> bool:
        # Prefetch (ActiveMQ's activemq.prefetchSize) bounds unacked messages; auto ack has none, so
        # only the transport's flow control (writable) holds it back.
        return (
            self.active
            and self.owner.writable
            and (self.ack == "auto" or len(self.unacked) < self.prefetch)
        )

    def matches(self, message: Message) -> bool:
        return self.selector is None or self.selector(message) is True

    def deliver(self, message: Message) -> bool:
        """Write a MESSAGE frame; True if the message now awaits an ACK."""
        own = {"subscription": self.id}  # the headers of this subscriber's frame alone
        if message.redelivered:
            own["redelivered"] = "true"
        tracked = self.ack != "auto"
        if tracked:
            ack_id = self.owner.next_ack_id(self)
            if self.owner.version == "1.2":
                own["ack"] = ack_id
            self.unacked[ack_id] = message
            self._by_message_id[message.message_id] = ack_id
        if message.shared is None or not self.owner.send_shared(message, own):
            headers = dict(message.headers)
            headers["destination"] = message.destination
            headers["message-id"] = message.message_id
            headers.update(own)
            self.owner.send(Frame("MESSAGE", headers, message.body))
        return tracked

    def ack_id_for(self, message_id: str) -> str | None:
        """STOMP 1.0/1.1 name a message by message-id; map it to our ack id."""
        return self._by_message_id.get(message_id)

    def take(self, ack_id: str) -> list[Message]:
        """Remove and return the messages an ACK/NACK of `ack_id` covers ([] if unknown)."""
        if ack_id not in self.unacked:
            return []
        if self.ack != "client":
            return [self._pop(ack_id)]
        taken = []
        while self.unacked:
            first = next(iter(self.unacked))
            taken.append(self._pop(first))
            if first == ack_id:
                break
        return taken

    def take_all(self) -> list[Message]:
        return [self._pop(ack_id) for ack_id in list(self.unacked)]

    def _pop(self, ack_id: str) -> Message:
        message = self.unacked.pop(ack_id)
        self._by_message_id.pop(message.message_id, None)
        self.owner.forget_ack_id(ack_id)
        return message
