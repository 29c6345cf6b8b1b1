"""Who may take a queue's message: exclusive consumers and message groups, as ActiveMQ decides it.

Exclusive consumer (SUBSCRIBE `activemq.exclusive:true`): while a queue has one, it alone receives
the queue's messages, whatever other consumers there are. The first exclusive consumer to arrive
holds the queue; when it leaves (UNSUBSCRIBE, disconnect) the next-oldest exclusive consumer takes
over, its unacked messages redelivered to that one. ActiveMQ would prefer a higher
`activemq.priority`; BatonMQ has no consumer priorities, so arrival order decides.

Message groups (SEND `JMSXGroupID:G`): every message of group G goes to one consumer, the group's
owner, while it lives; the first message of G that a consumer takes makes it the owner (and is
delivered with `JMSXGroupFirstForConsumer:true`). `JMSXGroupSeq:1` starts the group afresh: the
consumer that takes it is the new owner. A message with `JMSXGroupSeq` below 1 (ActiveMQ's -1)
closes the group once its owner takes it; the next message of G picks an owner again. When the
owner leaves, its groups have no owner and their next messages (its unacked ones first, returned to
the queue) pick new ones. A message whose owner is busy (prefetch full, slow socket) waits for it;
messages of other groups go on past it.

Owners are remembered for at most MAX_GROUPS groups per queue, least recently used forgotten first,
as ActiveMQ's default cached group map (1024): a client inventing group ids costs bounded memory,
and a forgotten group only picks a new owner.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from broker.engine.message import Message
    from broker.engine.subscription import Subscription

GROUP_ID = "JMSXGroupID"
GROUP_SEQ = "JMSXGroupSeq"
FIRST_FOR_CONSUMER = "JMSXGroupFirstForConsumer"
EXCLUSIVE = "activemq.exclusive"
MAX_GROUPS = 1024


def group_sequence(message: Message) -> int:
    """JMSXGroupSeq as ActiveMQ reads it: an integer, 0 when absent or not a number."""
    text = message.headers.get(GROUP_SEQ)
    if not text:
        return 0
    try:
        return int(text)
    except ValueError:
        return 0


class Ownership:
    """One queue's exclusive holder and group owners (made when the queue first needs them)."""

    def __init__(self) -> None:
        self.owners: OrderedDict[str, Subscription] = OrderedDict()  # group id -> owner, LRU order

    @staticmethod
    def exclusive_among(consumers: list[Subscription]) -> Subscription | None:
        """The oldest exclusive consumer: it holds the queue (consumers are in arrival order)."""
        for consumer in consumers:
            if consumer.exclusive:
                return consumer
        return None

    def admits(self, consumer: Subscription, message: Message) -> bool:
        """May `consumer` take `message`? If so, and it is the message's group's new owner, it is
        recorded as such (the caller delivers the message to it at once)."""
        group = message.headers.get(GROUP_ID)
        if group is None:
            return True
        sequence = group_sequence(message)
        owner = self.owners.get(group)
        if owner is not None and sequence != 1:
            if owner is not consumer:
                return False
            if sequence < 0:
                del self.owners[group]  # the group's last message: the next one picks an owner
            else:
                self.owners.move_to_end(group)
            return True
        self.owners[group] = consumer
        self.owners.move_to_end(group)
        if len(self.owners) > MAX_GROUPS:
            self.owners.popitem(last=False)
        message.headers = {**message.headers, FIRST_FOR_CONSUMER: "true"}  # headers may be shared
        return True

    def consumer_left(self, consumer: Subscription) -> None:
        """Its groups have no owner now: their next messages choose one."""
        for group in [g for g, owner in self.owners.items() if owner is consumer]:
            del self.owners[group]
