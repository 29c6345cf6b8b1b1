"""A message as the engine holds it, and its conversion to and from the store's record."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from broker.engine.errors import ClientError
from stores.base import StoredMessage
from transports.stomp.commands import PRODUCER_ID_HEADER

if TYPE_CHECKING:
    from broker.engine.sharedframe import SharedFrame

# Headers that belong to one hop of the transport, never to the message (STOMP 1.2, "SEND" / "MESSAGE"):
# they are set afresh on every MESSAGE frame or are meaningless once the SEND has been handled.
TRANSPORT_HEADERS = frozenset(
    {"receipt", "content-length", "transaction", "message-id", "subscription", "ack", "redelivered",
     "destination"}
)
DEFAULT_PRIORITY = 4  # JMS default priority
# Rough per-message overhead (objects, dict) so that tiny messages still count against memory limits.
OVERHEAD = 200


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(slots=True, eq=False)
class Message:
    message_id: str
    destination: str
    headers: dict[str, str]  # user headers, plus persistent/priority/expires/timestamp as sent
    body: bytes
    persistent: bool = False
    priority: int = DEFAULT_PRIORITY
    expires: int = 0  # epoch ms; 0 = never (JMS convention)
    producer_id: str | None = None
    redelivered: bool = False
    nacks: int = 0
    size: int = 0
    stored: bool = False  # this copy was written to the store under its queue's name
    shared: SharedFrame | None = None  # a topic fan-out's frame, shared by its copies (sharedframe.py)

    def __post_init__(self) -> None:
        if not self.size:
            # Once per SEND: map(len) sums in C, a generator of k/v pairs costs a frame step each.
            headers = self.headers
            self.size = len(self.body) + sum(map(len, headers)) + sum(map(len, headers.values())) + OVERHEAD

    def expired(self, now: int) -> bool:
        return self.expires > 0 and now >= self.expires

    def copy(self) -> Message:
        """A copy for another queue (topic fan-out): delivery state is per queue, content is shared.

        The constructor, not dataclasses.replace: this runs once per subscriber of every fan-out, and
        replace() looks every field up by name first (3x slower); `size` passed skips __post_init__'s sum.
        """
        return Message(self.message_id, self.destination, self.headers, self.body, self.persistent,
                       self.priority, self.expires, self.producer_id, False, 0, self.size, False, self.shared)

    def to_stored(self) -> StoredMessage:
        return StoredMessage(self.message_id, self.destination, self.headers, self.body, self.producer_id)


def from_send(message_id: str, destination: str, headers: dict[str, str], body: bytes) -> Message:
    """Build a Message from a SEND frame's headers; ClientError on a malformed priority/expires."""
    user = {k: v for k, v in headers.items() if k not in TRANSPORT_HEADERS}
    if "timestamp" not in user:  # not setdefault: that would read the clock even when it is set
        user["timestamp"] = str(now_ms())
    priority = _integer(user, "priority", DEFAULT_PRIORITY)
    priority = min(9, max(0, priority))  # JMS defines 0-9; clamp rather than refuse, as ActiveMQ does
    user["priority"] = str(priority)
    return Message(
        message_id=message_id,
        destination=destination,
        headers=user,
        body=body,
        persistent=is_persistent(user),
        priority=priority,
        expires=_integer(user, "expires", 0),
        producer_id=headers.get(PRODUCER_ID_HEADER),
    )


def is_persistent(headers: dict[str, str]) -> bool:
    """The `persistent` header as a SEND gives it; a spilled message's record keeps the headers, so
    the flag is read from them again when it comes back (spill.py)."""
    return headers.get("persistent", "").lower() == "true"


def from_stored(stored: StoredMessage, redelivered: bool = True, copy: bool = True) -> Message:
    """A recovered message: `redelivered` is set because we cannot know whether a consumer saw it
    before the crash (JMS "possibly delivered" semantics: conservative, never hides a redelivery).
    `copy=False` keeps the record's headers dict (a page just read: nobody else holds it).

    Once per message paged in from the store, so it is built positionally, the usual priority and
    expiry found by lookup rather than parsed (half the cost)."""
    headers = dict(stored.headers) if copy else stored.headers
    body = stored.body
    priority = _PRIORITIES.get(headers.get("priority", ""))
    if priority is None:
        priority = min(9, max(0, _lenient_int(headers.get("priority"), DEFAULT_PRIORITY)))
    expires = headers.get("expires")
    expires_ms = _lenient_int(expires, 0) if expires and expires != "0" else 0
    return Message(stored.message_id, stored.destination, headers, body, True, priority, expires_ms,
                   stored.producer_id, redelivered, 0, 0, True, None)  # size 0: __post_init__ sums it


_PRIORITIES = {str(p): p for p in range(10)}


def _integer(headers: dict[str, str], name: str, default: int) -> int:
    value = headers.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        problem = f"{name} must be an integer, got {value[:64]!r}"
        raise ClientError(f"invalid {name} header", problem) from None


def _lenient_int(value: str | None, default: int) -> int:
    try:
        return int(value) if value else default
    except ValueError:
        return default
