"""What an idle destination costs (docs/fairness.md, "Many destinations"): a queue makes a priority
level's deque only when a message of that priority arrives, so thousands of one-message queues stay
cheap, and the levels it never made behave as empty ones."""

from __future__ import annotations

import gc
import tracemalloc

from broker.engine.message import Message
from tests.unit.broker.memconn import make_broker

QUEUES = 2000


def message(i: int, priority: int = 4) -> Message:
    return Message(f"id-{i}", "/queue/q", {}, b"x" * 128, priority=priority, size=128)


def test_a_one_message_queue_costs_under_two_kib_beyond_its_message() -> None:
    broker = make_broker(max_destinations=QUEUES + 10)
    messages = [message(i) for i in range(QUEUES)]  # made before measuring: not the queues' cost
    broker.destinations.queue("/queue/warm").put(message(-1))
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i, m in enumerate(messages):
            broker.destinations.queue(f"/queue/many.{i}").put(m)
        gc.collect()
        per_queue = (tracemalloc.get_traced_memory()[0] - before) / QUEUES
    finally:
        tracemalloc.stop()
    # Ten eager deques alone were 7.6 KiB; a queue, its share, its one deque and the table entry fit in 2.
    assert per_queue < 2048, per_queue
    assert all(broker.destinations.queues[f"/queue/many.{i}"].depth == 1 for i in range(QUEUES))


def test_levels_never_used_read_as_empty_and_order_holds() -> None:
    broker = make_broker()
    queue = broker.destinations.queue("/queue/q")
    assert not queue.withdraw(message(0, priority=7))  # a level no message reached
    assert queue.discard_oldest() is False and queue.messages() == []
    low, high, mid = message(1, priority=0), message(2, priority=9), message(3, priority=4)
    for m in (low, high, mid):
        queue.put(m)
    assert queue.messages() == [high, mid, low] and queue.depth == 3
    assert [len(level) for level in queue.levels()] == [1, 0, 0, 0, 1, 0, 0, 0, 0, 1]
    assert queue.withdraw(mid) and not queue.withdraw(mid)
    assert queue.drain() == [high, low] and queue.depth == 0 and queue.bytes == 0
    queue.put_front([mid])  # after a drain, levels are made again as messages come
    assert queue.messages() == [mid] and queue.depth == 1
