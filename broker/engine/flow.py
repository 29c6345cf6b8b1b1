"""Producer flow control on the SEND path: a message waits for room in its destination and the budget.

A SEND (or COMMIT) whose message would take its queue's share, a durable subscriber's share or the
broker's whole memory budget past the limit (transports/memory.py) raises `NoRoom`. The session then
holds that frame, and so every later frame of the connection (its reader stops; the socket then
stops being read), until a release makes room, and handles it again; if no room came within
`limits.producer_flow_control_timeout` it answers ERROR naming the limit and closes, as ActiveMQ's
sendFailIfNoSpaceAfterTimeout; with 0 at once (sendFailIfNoSpace). A destination whose policy says
`producer_flow_control = false` (config/policy.py) refuses at once whichever share is full. Other
connections go on: a consumer's ACK or a SEND to a destination with room is not behind it.

A persistent message to a durable queue on a broker with a store is not held for memory either: its
queue's store cursor keeps it in the store only when there is no room (broker/engine/cursor.py); the
disk limit (stores/usage.py) holds such a producer instead. Likewise, with `limits.non_persistent =
"spill"`, a non-persistent message to a `/queue/`, a temporary queue or a durable subscription with no
room, or a persistent one to a temporary queue (never stored), is spilled to the temporary store
(broker/engine/spill.py): its producer is held only at limits.temp_usage (or while the temporary
store's writes under way are at their bound), and refused naming limits.temp_usage.

Non-durable topic subscribers never hold a SEND back (a slow one loses its oldest messages instead,
broker/engine/topic.py): only the durable subscriptions the message goes to are asked.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING

from broker.engine.destinations import Destinations, is_temp, is_topic
from broker.engine.errors import ClientError
from broker.engine.message import Message
from transports.gate import RoomWaiter
from transports.memory import Share, refusal

if TYPE_CHECKING:
    from broker.engine.policies import Resolved
    from broker.engine.queue import Queue


class NoRoom(ClientError):
    """No room for a message: `full` is the share (a destination's, or the budget) that is full;
    `timeout` how long its producer may be held back for it, set by `flow` (a policy's or the
    broker-wide key)."""

    def __init__(self, full: Share, policy: Resolved) -> None:
        message, detail = refusal(full, policy.flow_timeout, policy.flow_setting)
        super().__init__(message, detail, {"memory-limit": full.setting or "limits.memory_budget"})
        self.full = full
        self.timeout = policy.flow_timeout


def targets(destinations: Destinations, message: Message) -> list[Queue]:
    """The queues whose stored copy the message needs; NoRoom if one of them (or the budget) is full.
    Each queue's policy says how long its producer may wait (a durable subscription's is its topic's)."""
    if not is_topic(message.destination):
        if is_temp(message.destination):  # never stored; gone with its connection
            temp = destinations.queues.get(message.destination)
            full = _full(temp, message, stored=False) if temp is not None else None
            if full is not None and temp is not None:
                raise NoRoom(full, temp.policy)
            return []
        queue = destinations.queue(message.destination)
        full = _full(queue, message)
        if full is not None:
            raise NoRoom(full, queue.policy)
        return [queue]
    durable = [t.queue for t in destinations.topic(message.destination).durable_targets(message)]
    for queue in durable:
        full = _full(queue, message)
        if full is not None:
            raise NoRoom(full, queue.policy)
    return durable


def _full(queue: Queue, message: Message, stored: bool = True) -> Share | None:
    """The share with no room for `message` in `queue`, or None. A message the queue spills
    (non-persistent, or any to a temporary queue) is held only at the temporary store's limits; a
    persistent one to a queue with a store cursor (`stored`: not a temporary queue's) never, as it
    is paged when there is no room."""
    size = message.size
    spill = queue.spill
    if spill is not None and spill.takes(message):
        return spill.space.blocked(size)
    if stored and message.persistent and queue.cursor is not None:
        return None
    return queue.memory.blocked(size)


async def when_room(retry: Callable[[], None], first: NoRoom, timeout: float,
                    gone: Callable[[], bool]) -> None:
    """Call `retry` again each time the full share makes room, until it raises no NoRoom; raise the
    last NoRoom once `timeout` has passed without room (or at once with 0)."""
    loop = asyncio.get_running_loop()
    waiter = RoomWaiter(loop)
    deadline = loop.time() + timeout
    error = first
    while True:
        woken = await waiter.wait(error.full, deadline - loop.time())
        if gone():
            return
        try:
            retry()  # after a release, or once more at the deadline
            return
        except NoRoom as again:
            if not woken or loop.time() >= deadline:
                raise again from None
            error = again
