"""Temporary destinations: `/temp-queue/NAME` and `/temp-topic/NAME`, as ActiveMQ's STOMP has them.

A client names a temporary destination `/temp-queue/NAME`; the name is its own, scoped to its
connection (two connections saying `/temp-queue/reply` get two queues). The first time a connection
uses such a name (SEND, SUBSCRIBE, or a SEND's `reply-to` header) the broker creates a queue (or
topic) with a broker-wide name, `/remote-temp-queue/ID:...` (`/remote-temp-topic/ID:...`), as
ActiveMQ does. Anything this connection receives names it back as `/temp-queue/NAME`; everyone else
sees the broker-wide name, so the usual request/reply works:

    requester:  SEND /queue/service, reply-to:/temp-queue/r     (and SUBSCRIBE /temp-queue/r)
    service:    gets reply-to:/remote-temp-queue/ID:...:1,  SENDs its answer there
    requester:  gets the answer, destination:/temp-queue/r

Rules (JMS's, which ActiveMQ keeps): only the creating connection may subscribe; anyone may send to
the broker-wide name while it exists; sending to one that does not exist (its connection is gone)
is an ERROR, and the connection goes on. Messages of temporary destinations are never written to
the store, `persistent:true` or not, and are dropped with the destination when its connection ends
(DISCONNECT, a lost socket, or ERROR). With `limits.non_persistent = "spill"` a temporary queue's
messages beyond its window, persistent or not, are in the temporary store (spill.py), and come back
with the `persistent` header they were sent with; their records are released with it.
Authorization does not apply to them: ActiveMQ without a `tempDestinationAuthorizationEntry` lets
every user use them, and that entry is not supported.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from broker.engine.destinations import (
    LOCAL_TEMP_PREFIXES,
    MAX_NAME_LENGTH,
    REMOTE_TEMP_QUEUE,
    REMOTE_TEMP_TOPIC,
    TEMP_QUEUE,
    TEMP_TOPIC,
    Destinations,
)
from broker.engine.errors import ClientError, Rejected

if TYPE_CHECKING:
    from broker.engine.message import Message

# Temporary destinations one connection may hold (each also counts in limits.max_destinations).
MAX_PER_CONNECTION = 1000


class TempNames:
    """One connection's temporary destinations: its own names and the broker-wide ones."""

    def __init__(self, connection_id: str) -> None:
        self.connection_id = connection_id
        self.remote: dict[str, str] = {}  # /temp-queue/NAME -> /remote-temp-queue/ID:...
        self.local: dict[str, str] = {}  # and back
        self._seq = 0

    def next_remote(self, local: str) -> str:
        self._seq += 1
        prefix = REMOTE_TEMP_QUEUE if local.startswith(TEMP_QUEUE) else REMOTE_TEMP_TOPIC
        return f"{prefix}{self.connection_id}:{self._seq}"

    def localize(self, headers: dict[str, str]) -> dict[str, str]:
        """A MESSAGE's headers as this connection names things (a copy if anything changes)."""
        out = headers
        for name in ("destination", "reply-to", "original-destination"):
            local = self.local.get(headers.get(name, ""))
            if local is not None:
                if out is headers:
                    out = dict(headers)
                out[name] = local
        return out


class TempDestinations:
    """Broker-wide: which temporary destinations exist and which connection owns each."""

    def __init__(self, destinations: Destinations) -> None:
        self.destinations = destinations
        self.owners: dict[str, str] = {}  # broker-wide name -> connection id

    def resolve(self, names: TempNames, local: str, create: bool = True) -> str | None:
        """The broker-wide name of `local` (`/temp-queue/NAME`) for this connection, created if asked."""
        remote = names.remote.get(local)
        if remote is not None or not create:
            return remote
        prefix = TEMP_QUEUE if local.startswith(TEMP_QUEUE) else TEMP_TOPIC
        if len(local) > MAX_NAME_LENGTH or len(local) == len(prefix):
            raise ClientError("invalid destination", f"{local[:200]!r}: expected /temp-queue/NAME "
                              "or /temp-topic/NAME")
        if len(names.remote) >= MAX_PER_CONNECTION:
            raise Rejected("too many temporary destinations", f"at most {MAX_PER_CONNECTION} per connection")
        remote = names.next_remote(local)
        if remote.startswith(REMOTE_TEMP_QUEUE):
            self.destinations.queue(remote)  # counts against max_destinations: may raise
        else:
            self.destinations.topic(remote)
        names.remote[local], names.local[remote] = remote, local
        self.owners[remote] = names.connection_id
        return remote

    def check_send(self, remote: str) -> None:
        if remote not in self.owners:
            raise Rejected("temporary destination gone",
                           f"{remote[:200]} does not exist (the connection that made it has ended)")

    def check_consume(self, names: TempNames | None, remote: str, durable_name: str | None = None) -> None:
        """May this connection SUBSCRIBE to `remote` (durably, if `durable_name`)?"""
        if self.owners.get(remote) is None:
            self.check_send(remote)
        if names is None or self.owners[remote] != names.connection_id:
            raise Rejected("temporary destination of another connection",
                           f"only the connection that created {remote[:200]} may subscribe to it")
        if durable_name:
            raise Rejected("durable subscription to a temporary topic",
                           "a temporary topic ends with its connection: it cannot be subscribed durably")

    def rewrite_reply_to(self, names: TempNames, headers: dict[str, str]) -> dict[str, str]:
        """A SEND's headers with `reply-to:/temp-queue/NAME` made the broker-wide name, as ActiveMQ."""
        reply_to = headers.get("reply-to") or ""
        if not reply_to.startswith(LOCAL_TEMP_PREFIXES) or reply_to in LOCAL_TEMP_PREFIXES:
            return headers  # ActiveMQ too keeps a reply-to it cannot resolve as it was sent
        return {**headers, "reply-to": self.resolve(names, reply_to) or reply_to}

    def release(self, names: TempNames) -> list[Message]:
        """The connection ended: its temporary destinations go, with their messages (returned)."""
        dropped: list[Message] = []
        for remote in names.local:
            self.owners.pop(remote, None)
            queue = self.destinations.queues.pop(remote, None)
            if queue is not None:
                dropped += queue.drain()
                if queue.spill is not None:
                    queue.spill.clear()  # their records in the temporary store go with them
                queue.memory.close()  # its share of the memory budget goes with it
            topic = self.destinations.topics.pop(remote, None)
            if topic is not None:
                topic.memory.close()
        names.remote.clear()
        names.local.clear()
        return dropped
