"""The heads an open hands over (stores/base.py, "Recovery"): each queue's first messages in store
order up to about `cursor_window` bytes, read from a store's files through its read seam.

Shared by every store's open and by the journal follower's rebuild. A store gives either a
`ReadPages` of its own (LevelDB: its read_batch per queue) or, when it keeps one `Location` per
message, `pages_of` its queue orders and blocking key reads.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping

from stores.base import DurableSubscription, Page, Recovered, StoredMessage, stored_bytes
from stores.order import Order
from stores.reads import Key

# Reading heads: a first page of a few messages per queue (most queues hold few), then pages
# sized by the average message so far to just fill the window; the queues are read in groups of
# about ROUND_BYTES (their windows, or their estimates), so a record holding many queues'
# messages (a group commit's) is decoded once per group, and memory holds a group's pages.
FIRST_PAGE = 16
MAX_PAGE = 4096
ROUND_BYTES = 64 * 1024 * 1024

# Several queues' pages at once: queue -> (after, limit) in, queue -> Page out. Stores whose
# records hold many queues' messages (a group commit's) then read each record once per round.
ReadPages = Callable[[dict[str, tuple[int | None, int]]], dict[str, Page]]


def pages_of(order_of: Callable[[str], Order | None],
             read_keys: Callable[[list[Key]], dict[Key, StoredMessage]]) -> ReadPages:
    """A `ReadPages` over queue orders and one blocking `read_keys` for all the queues' messages.
    For a store no one else changes meanwhile (an open, a follower's own index)."""
    def read(wanted: dict[str, tuple[int | None, int]]) -> dict[str, Page]:
        entries: dict[str, list[tuple[int, str]]] = {}
        for queue, (after, limit) in wanted.items():
            order = order_of(queue)
            entries[queue] = [] if order is None else order.after(after, limit)
        found = read_keys([(queue, mid) for queue, page in entries.items() for _, mid in page])
        return {queue: Page([found[(queue, mid)] for _, mid in page if (queue, mid) in found],
                            page[-1][0] if page else wanted[queue][0])
                for queue, page in entries.items()}
    return read


def read_heads(queues: Iterable[str], read: ReadPages, window: int) -> dict[str, list[StoredMessage]]:
    """Each queue's first messages in store order that fit in `window` bytes; at least one."""
    heads: dict[str, list[StoredMessage]] = {queue: [] for queue in queues}
    used = dict.fromkeys(heads, 0)
    wanted: dict[str, tuple[int | None, int]] = dict.fromkeys(heads, (None, FIRST_PAGE))
    while wanted:
        more: dict[str, tuple[int | None, int]] = {}
        for group in _rounds(wanted, heads, used, window):
            for queue, page in read(group).items():
                head, limit = heads[queue], group[queue][1]
                for message in page.messages:
                    used[queue] += stored_bytes(message)
                    if head and used[queue] > window:
                        break
                    head.append(message)
                else:
                    if len(page.messages) == limit:  # fewer: the queue has no more
                        more[queue] = (page.next, _next_limit(used[queue], len(head), window))
        wanted = more
    return heads


def _next_limit(used: int, count: int, window: int) -> int:
    """Enough messages of the average size so far to fill the window, and one to find its end."""
    average = max(1, used // max(1, count))
    return min(MAX_PAGE, max(0, window - used) // average + 1)


def _rounds(wanted: dict[str, tuple[int | None, int]], heads: dict[str, list[StoredMessage]],
            used: dict[str, int], window: int) -> Iterator[dict[str, tuple[int | None, int]]]:
    group: dict[str, tuple[int | None, int]] = {}
    total = 0
    for queue, request in wanted.items():
        count = len(heads[queue])
        cost = window if not count else min(window, request[1] * used[queue] // count)
        if group and total + cost > ROUND_BYTES:
            yield group
            group, total = {}, 0
        group[queue] = request
        total += cost
    if group:
        yield group


def recovered_heads(
    depths: Mapping[str, int],
    read: ReadPages,
    window: int,
    subscriptions: Iterable[DurableSubscription],
    producer_ids: Iterable[str],
) -> Recovered:
    """`Recovered` from a store's index (queue -> messages stored, in the index's queue order):
    the head of each queue read from the files, the depths as counted (stores/base.py, Recovery)."""
    queues = read_heads([queue for queue, depth in depths.items() if depth], read, window)
    return Recovered(
        queues=queues,
        subscriptions=list(subscriptions),
        producer_ids=list(producer_ids),
        depths={queue: depths[queue] for queue in queues},
    )
