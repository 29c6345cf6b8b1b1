"""What an operator may do to a running broker's queues: list, browse, purge, move, remove, delete.

The one seam between the admin API (broker/daemon/adminapi.py), queue browsing over STOMP
(`browser:true`, broker/engine/browse.py) and the queues' insides: nothing else reaches into a
queue to look at or take out waiting messages, so a queue that keeps some messages on disk only
(paging) re-implements these functions and nothing else changes.

Only *waiting* messages are touched: one in flight (delivered, not acked yet) belongs to its
consumer until it is acked or comes back. Persistent messages change through the store first,
as everything else does (design.md section 3): the messages leave their queue at once, so no
consumer takes them meanwhile; the store write runs; only then do they arrive where they go
(or, if the write failed, go back where they were). A move is ONE write of every RemoveMessage
from the source and AddMessage to the target (one per WRITE_BYTES of messages for a very large
move, since a store record is bounded), so a crash at any point leaves each message in exactly
one of the two queues: never lost, never in both.

A durable queue that pages (broker/engine/cursor.py, docs/paging.md) has messages in the store only:
every operation here sees them too, read with `PagedScan` in store order and bounded pages, after
those in memory. While an operation takes paged messages out, it holds the queue's cursor, so that
none of them is paged in meanwhile. A queue that spills (broker/engine/spill.py) has unstored
messages (non-persistent ones; a temporary queue's, persistent or not) in the temporary store
only: every operation here sees them too, after the paged ones, read with `SpillScan` in the order
they come back; an operation that takes some out holds the spill's reader as it holds the cursor,
and takes them out with no store write (Spill.take).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from broker.engine.destinations import QUEUE_PREFIX, TOPIC_PREFIX, is_topic
from broker.engine.errors import ClientError
from broker.engine.message import Message, now_ms
from broker.engine.queue import Queue
from stores.base import AddMessage, Op, RemoveMessage, StoreError

if TYPE_CHECKING:
    from broker.engine.core import Broker
    from broker.engine.policies import Resolved
    from broker.engine.spill import Spill
    from broker.engine.topic import Topic

ORIGINAL_DESTINATION = "original-destination"  # set on a dead letter: where it was going (ActiveMQ's)
MAX_BROWSE = 1000  # messages per browse page
MAX_MOVE = 100_000  # messages per move or copy request
WRITE_BYTES = 32 * 1024 * 1024  # of messages per store write of a move (a journal record is bounded)
PAGE = 500  # paged messages per store read


class AdminError(Exception):
    """An operation that cannot be done; `status` is the HTTP status the API answers with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(slots=True)
class DestinationRow:
    name: str
    kind: str  # queue, topic or durable (a durable topic subscription's queue)
    depth: int  # in memory, paged and spilled
    paged: int  # in the store only (docs/paging.md)
    spilled: int  # never stored, in the temporary store only (docs/paging.md)
    in_flight: int
    consumers: int
    enqueued: int
    dequeued: int
    expired: int
    bytes: int
    oldest_age_ms: int | None  # age of the oldest waiting message; None when none waits
    # What its [[policy]] entry (or the broker-wide settings) gave it (broker/engine/policies.py):
    policy: str  # the entry's pattern, or "default"
    memory_limit: int
    cursor_window: int
    producer_flow_control: bool


DEFAULT_POLICY = "default"  # how a row names the broker-wide settings


def destinations(broker: Broker) -> list[DestinationRow]:
    """Every queue, topic and durable subscription, sorted by name."""
    now = now_ms()
    rows = [_queue_row(q, "queue", now) for q in broker.destinations.queues.values()]
    rows += [_queue_row(d.queue, "durable", now) for d in broker.destinations.durables.values()]
    rows += [_topic_row(topic) for topic in broker.destinations.topics.values()]
    return sorted(rows, key=lambda row: row.name)


def _queue_row(queue: Queue, kind: str, now: int) -> DestinationRow:
    oldest = oldest_timestamp(queue)
    return DestinationRow(queue.name, kind, queue.depth, queue.paged, queue.spilled, queue.in_flight,
                          len(queue.consumers), queue.enqueued, queue.dequeued, queue.expired, queue.bytes,
                          None if oldest is None else max(0, now - oldest), *_policy_fields(queue.policy))


def _topic_row(topic: Topic) -> DestinationRow:
    return DestinationRow(topic.name, "topic", 0, 0, 0, 0, len(topic.queues), topic.published, 0, 0, 0, None,
                          *_policy_fields(topic.policy))


def _policy_fields(policy: Resolved) -> tuple[str, int, int, bool]:
    """A row's policy, memory_limit, cursor_window and producer_flow_control."""
    return (policy.pattern or DEFAULT_POLICY, policy.memory_limit, policy.cursor_window,
            policy.producer_flow_control)


def oldest_timestamp(queue: Queue) -> int | None:
    """The earliest `timestamp` among the first waiting message of each priority: messages enter a
    priority at its end (or, coming back from a consumer, at its front), so its head is its oldest."""
    stamps = [_timestamp(level[0]) for level in queue.levels() if level]
    known = [stamp for stamp in stamps if stamp is not None]
    return min(known) if known else None


def _timestamp(message: Message) -> int | None:
    try:
        return int(message.headers.get("timestamp", ""))
    except ValueError:
        return None


def queue_of(broker: Broker, name: str) -> Queue:
    """The queue `name` (/queue/NAME); AdminError 404 when the broker holds no such queue."""
    if not name.startswith(QUEUE_PREFIX) or len(name) == len(QUEUE_PREFIX):
        raise AdminError(400, f"not a queue: {name[:200]!r} (expected /queue/NAME)")
    queue = broker.destinations.queues.get(name)
    if queue is None:
        raise AdminError(404, f"no queue {name[:200]}")
    return queue


# -- reading ---------------------------------------------------------------------------------------


class PagedScan:
    """A queue's paged messages in store order, read a bounded page at a time, none taken out:
    those paged when the scan began (at most `limit`)."""

    def __init__(self, queue: Queue, limit: int | None = None) -> None:
        self.cursor = queue.cursor
        paged = queue.paged
        self.left = paged if limit is None else min(limit, paged)
        self.after = self.cursor.after if self.cursor is not None else None

    @property
    def done(self) -> bool:
        return self.cursor is None or self.left <= 0

    async def next(self, count: int = PAGE) -> list[Message]:
        if self.cursor is None or self.left <= 0:
            return []
        want = min(count, self.left)
        try:
            messages, page = await self.cursor.read_paged(self.after, want)
        except StoreError as exc:
            raise AdminError(503, f"reading the store failed: {exc}") from exc
        self.after = page.next
        self.left = 0 if len(page.messages) < want else self.left - len(page.messages)
        return messages

    async def skip_take(self, skip: int, count: int) -> list[Message]:
        """`count` messages after the first `skip` (read and dropped, a page at a time)."""
        out: list[Message] = []
        while not self.done and len(out) < count:
            messages = await self.next()
            if skip >= len(messages):
                skip -= len(messages)
                continue
            out.extend(messages[skip:skip + count - len(out)])
            skip = 0
        return out


class SpillScan:
    """A queue's spilled messages in the order they come back, read a bounded page at a time, none
    taken out: those spilled when the scan began. One read back into memory meanwhile is left out
    (it was not in memory when the scan began, and is spilled no more)."""

    def __init__(self, queue: Queue) -> None:
        self.spill = queue.spill
        fifo = self.spill.fifo if self.spill is not None else None
        self.seq = fifo.first if fifo is not None else 0  # sequence number of the next one to look at
        self.end = fifo.end if fifo is not None else 0

    @property
    def done(self) -> bool:
        return self.spill is None or self.seq >= self.end

    async def next(self, count: int = PAGE) -> list[Message]:
        return [message for _, message in await self.next_entries(count)]

    async def next_entries(self, count: int = PAGE) -> list[tuple[int, Message]]:
        """The next page, each message with its sequence number in the spill (for Spill.take)."""
        spill = self.spill
        if spill is None or self.seq >= self.end:
            return []
        entries = [e for e in spill.entries(spill.index(self.seq), count) if e[0] < self.end]
        self.seq = entries[-1][0] + 1 if entries else self.end
        try:
            return await spill.look(entries)
        except StoreError as exc:
            raise AdminError(503, f"reading the temporary store failed: {exc}") from exc


async def spilled(queue: Queue, wanted: set[str] | None, limit: int) -> list[tuple[int, Message]]:
    """At most `limit` spilled messages with their sequence numbers, in the order they come back:
    the first ones, or those `wanted` names (every record is read until all are found; there is no
    index by id, which would cost more memory than a spilled message's location)."""
    scan = SpillScan(queue)
    out: list[tuple[int, Message]] = []
    while not scan.done and len(out) < limit:
        out += [e for e in await scan.next_entries() if wanted is None or e[1].message_id in wanted]
    return out[:limit]


async def browse(queue: Queue, offset: int, limit: int) -> list[Message]:
    """Waiting messages `offset` .. `offset + limit` in delivery order (those in memory, then the
    paged ones in store order, then the spilled ones), none taken out."""
    if offset < 0 or not 1 <= limit <= MAX_BROWSE:
        raise AdminError(400, f"offset must be >= 0 and limit 1..{MAX_BROWSE}")
    out: list[Message] = []
    in_memory = 0
    skip = offset
    for level in queue.levels(delivery_order=True):
        in_memory += len(level)
        if len(out) >= limit:
            continue
        if skip >= len(level):
            skip -= len(level)
            continue
        out.extend(itertools.islice(level, skip, skip + limit - len(out)))  # deque: no index walk
        skip = 0
    paged = queue.paged
    if len(out) < limit and paged:
        out += await PagedScan(queue).skip_take(max(0, offset - in_memory), limit - len(out))
    if len(out) < limit and queue.spill is not None and queue.spilled:
        try:  # then the unstored ones in the temporary store, in the order they come back
            out += await queue.spill.peek(max(0, offset - in_memory - paged), limit - len(out))
        except StoreError as exc:
            raise AdminError(503, f"reading the temporary store failed: {exc}") from exc
    return out


def snapshot(queue: Queue) -> list[Message]:
    """Every waiting message in memory in delivery order (references only); a STOMP queue browser
    reads the paged ones after them with a PagedScan, then the spilled ones with a SpillScan."""
    return queue.messages()


async def waiting(queue: Queue, limit: int = MAX_MOVE) -> list[Message]:
    """At most `limit` waiting messages, in memory, paged and spilled, in delivery order."""
    out = queue.messages()[:limit]
    if len(out) < limit and queue.paged:
        out += await PagedScan(queue, limit - len(out)).skip_take(0, limit - len(out))
    if len(out) < limit and queue.spilled:
        out += [message for _, message in await spilled(queue, None, limit - len(out))]
    return out


@contextlib.asynccontextmanager
async def _held(queue: Queue) -> AsyncIterator[None]:
    """Neither paged nor spilled messages come into memory meanwhile."""
    async with contextlib.AsyncExitStack() as stack:
        if queue.cursor is not None:
            await stack.enter_async_context(queue.cursor.held())
        if queue.spill is not None:
            await stack.enter_async_context(queue.spill.held())
        yield


# -- changing --------------------------------------------------------------------------------------


async def purge(broker: Broker, queue: Queue) -> int:
    """Remove every waiting message; return how many. Answers once their removal is durable."""
    async with _held(queue):
        taken = queue.drain()
        await _commit(broker, [RemoveMessage(queue.name, m.message_id) for m in taken if m.stored],
                      undo=lambda: queue.put_front(taken))
        queue.dequeued += len(taken)
        spilled = queue.spill.clear() if queue.spill is not None else 0  # never stored: no store write
        queue.dequeued += spilled
        return len(taken) + spilled + await _purge_paged(broker, queue)


async def _purge_paged(broker: Broker, queue: Queue) -> int:
    """Remove the messages paged when the purge began, a page per store write."""
    scan, removed = PagedScan(queue), 0
    while not scan.done:
        messages = await scan.next()
        if not messages:
            break
        await _commit(broker, [RemoveMessage(queue.name, m.message_id) for m in messages], undo=None)
        assert queue.cursor is not None
        queue.cursor.uncount(len(messages))
        queue.dequeued += len(messages)
        removed += len(messages)
    return removed


async def remove(broker: Broker, queue: Queue, message_id: str) -> None:
    """Remove one waiting message by id (AdminError 404 if none waits with that id, 409 if in flight)."""
    message = _find(queue, {message_id})
    if not message and queue.cursor is not None and queue.paged:
        async with queue.cursor.held():
            paged = await _read_one(queue, message_id)
            if paged is not None:
                await _commit(broker, [RemoveMessage(queue.name, message_id)], undo=None)
                queue.cursor.uncount()
                queue.dequeued += 1
                return
    if not message and queue.spill is not None and queue.spilled:
        if await _remove_spilled(queue, queue.spill, message_id):
            return
        message = _find(queue, {message_id})  # read back into memory meanwhile
    if not message:
        in_flight = any(message_id == m.message_id for c in queue.consumers for m in c.unacked.values())
        raise AdminError(409 if in_flight else 404,
                         f"message {message_id[:200]} is " + ("in flight to a consumer" if in_flight
                                                              else f"not waiting in {queue.name}"))
    taken = message[0]
    queue.withdraw(taken)
    await _commit(broker, [RemoveMessage(queue.name, taken.message_id)] if taken.stored else [],
                  undo=lambda: queue.put_front([taken]))
    queue.enqueued += 1  # withdraw() undid the enqueue count: it counts as put, then taken out
    queue.dequeued += 1


async def _remove_spilled(queue: Queue, spill: Spill, message_id: str) -> bool:
    """Remove the spilled message with this id (never stored: no store write); False if none."""
    async with spill.held():
        found = await spilled(queue, {message_id}, 1)
        if not found or not spill.take([found[0][0]]):
            return False
    queue.dequeued += 1
    return True


@dataclass(slots=True)
class Moved:
    moved: int
    skipped: int  # asked for, but not waiting, or (to the original destination) without one
    targets: dict[str, int]


async def move(broker: Broker, source: Queue, target: str | None, ids: Iterable[str] | None = None,
               limit: int = MAX_MOVE, copy: bool = False) -> Moved:
    """Move (or copy) waiting messages of `source` to queue `target`, or with `target` None each to
    the destination its `original-destination` header names (a dead letter going home). `ids`
    names the messages (default: all, oldest first, at most `limit`).

    One store write per batch of at most WRITE_BYTES of messages (one write for all of a usual
    move; a store record is bounded): a crash between two batches leaves the first moved and the
    second not, each message still in exactly one queue."""
    if not 1 <= limit <= MAX_MOVE:
        raise AdminError(400, f"limit must be 1..{MAX_MOVE}")
    if target is not None:
        _check_queue_name(target)
        if target == source.name:
            raise AdminError(400, f"{target[:200]} is the source itself")
    wanted = None if ids is None else set(ids)
    if wanted is not None and len(wanted) > MAX_MOVE:
        raise AdminError(400, f"at most {MAX_MOVE} ids per request")
    async with _held(source):
        return await _move(broker, source, target, wanted, limit, copy)


@dataclass(slots=True)
class _Outside:
    """The picked messages not in memory, by id(): paged (in the store only) and spilled (each
    with its sequence number in the spill)."""
    paged: set[int] = dataclasses.field(default_factory=set)
    spilled: dict[int, int] = dataclasses.field(default_factory=dict)

    def has(self, message: Message) -> bool:
        return id(message) in self.paged or id(message) in self.spilled


async def _move(broker: Broker, source: Queue, target: str | None, wanted: set[str] | None, limit: int,
                copy: bool) -> Moved:
    picked, outside = await _pick(source, wanted, limit)
    plan: list[tuple[Message, str]] = []
    for message in picked[:limit]:
        where = target or message.headers.get(ORIGINAL_DESTINATION)
        if where and where.startswith(QUEUE_PREFIX) and where != source.name:
            plan.append((message, where))
    for where in {w for _, w in plan}:
        _make_queue(broker, where)  # now, so that a full destination table refuses before anything moves
    counts: dict[str, int] = {}
    for batch in _batches(plan):
        await _move_batch(broker, source, batch, copy, counts, outside)
    moved = sum(counts.values())
    asked = min(len(picked), limit) if wanted is None else len(wanted)
    return Moved(moved, asked - moved, counts)


async def _pick(source: Queue, wanted: set[str] | None, limit: int) -> tuple[list[Message], _Outside]:
    """The messages a move takes, in delivery order: in memory, then paged, then spilled."""
    picked = _find(source, wanted) if wanted is not None else source.messages()[:limit]
    outside = _Outside()
    want = limit if wanted is None else len(wanted)
    if source.paged and len(picked) < want:
        if wanted is None:
            paged = await PagedScan(source, limit - len(picked)).skip_take(0, limit - len(picked))
        else:
            found = {m.message_id for m in picked}
            paged = [m for i in sorted(wanted - found) if (m := await _read_one(source, i)) is not None]
        outside.paged = {id(m) for m in paged}
        picked += paged
    if source.spilled and len(picked) < want:
        rest = None if wanted is None else wanted - {m.message_id for m in picked}
        entries = await spilled(source, rest, want - len(picked))
        outside.spilled = {id(m): seq for seq, m in entries}
        picked += [m for _, m in entries]
    return picked, outside


def _batches(plan: list[tuple[Message, str]]) -> Iterator[list[tuple[Message, str]]]:
    batch: list[tuple[Message, str]] = []
    size = 0
    for entry in plan:
        if batch and size + entry[0].size > WRITE_BYTES:
            yield batch
            batch, size = [], 0
        batch.append(entry)
        size += entry[0].size
    if batch:
        yield batch


async def _move_batch(broker: Broker, source: Queue, batch: list[tuple[Message, str]], copy: bool,
                      counts: dict[str, int], outside: _Outside) -> None:
    # A message a consumer took while an earlier batch was written is no longer waiting: skipped.
    # Paged and spilled ones wait outside memory, and the held source brings none in meanwhile.
    taken = [(m, where) for m, where in batch if copy or outside.has(m) or source.withdraw(m)]
    arrivals = [_arrival(broker, message, where, copy) for message, where in taken]
    ops: list[Op] = []
    for (message, where), arrival in zip(taken, arrivals, strict=True):
        if not copy and message.stored:
            ops.append(RemoveMessage(source.name, message.message_id))
        if arrival.stored:
            ops.append(AddMessage(where, arrival.to_stored()))
    in_memory = [m for m, _ in taken if not outside.has(m)]
    paged: list[bool] = [False] * len(arrivals)

    def started(write: asyncio.Future[None]) -> None:
        # Right after the write started, in store order: which arrivals their queue pages (cursor.py).
        for i, arrival in enumerate(arrivals):
            queue = broker.destinations.queue(arrival.destination, limited=False)
            if arrival.stored and queue.cursor is not None:
                paged[i] = queue.cursor.decide(arrival, write)

    await _commit(broker, ops, undo=lambda: None if copy else source.put_front(in_memory), started=started)
    lost = set() if copy else _taken_out(source, taken, in_memory, outside)
    arrived: set[str] = set()
    for i, (arrival, was_paged) in enumerate(zip(arrivals, paged, strict=True)):
        if i in lost:
            continue
        counts[arrival.destination] = counts.get(arrival.destination, 0) + 1
        arrived.add(arrival.destination)
        if was_paged:
            continue  # counted by its queue's cursor when written
        # Looked up again: an idle target may have been collected while the write ran.
        queue = broker.destinations.queue(arrival.destination, limited=False)
        queue.arrive(arrival)  # a non-persistent one may spill there (targets are /queue/ only)
        if arrival.stored and queue.cursor is not None:
            queue.cursor.routed(arrival)
    for where in arrived:
        broker.destinations.queue(where, limited=False).dispatch()


def _taken_out(source: Queue, taken: list[tuple[Message, str]], in_memory: list[Message],
               outside: _Outside) -> set[int]:
    """Once a move's write is done: its spilled messages leave the source's spill (never stored:
    nothing to write) and the source's counts follow. The indexes in `taken` of spilled ones a purge
    dropped meanwhile, which go nowhere."""
    seqs = {outside.spilled[id(m)]: i for i, (m, _) in enumerate(taken) if id(m) in outside.spilled}
    out = source.spill.take(seqs) if seqs and source.spill is not None else set()
    lost = {i for seq, i in seqs.items() if seq not in out}
    source.enqueued += len(in_memory)  # withdraw() undid their enqueue count
    source.dequeued += len(taken) - len(lost)
    from_store = sum(1 for m, _ in taken if id(m) in outside.paged)
    if source.cursor is not None and from_store:
        source.cursor.uncount(from_store)
    return lost


def _arrival(broker: Broker, message: Message, where: str, copy: bool) -> Message:
    """The message as it will wait in `where`: a copy gets an id of its own (a queue holds an id
    once); a message back at its original destination loses the header that named it."""
    headers = dict(message.headers)
    if headers.get(ORIGINAL_DESTINATION) == where:
        del headers[ORIGINAL_DESTINATION]
    message_id = broker.new_message_id() if copy else message.message_id
    stored = message.persistent and broker.store is not None
    return dataclasses.replace(message, message_id=message_id, destination=where, headers=headers, nacks=0,
                               redelivered=False, stored=stored)


async def delete(broker: Broker, name: str) -> int:
    """Remove a queue with its waiting messages, or a topic; return the messages purged. Refused
    (409) while consumers are attached or messages are in flight: those belong to clients."""
    if is_topic(name):
        topic = broker.destinations.topics.get(name)
        if topic is None:
            raise AdminError(404, f"no topic {name[:200]}")
        if topic.queues:
            raise AdminError(409, f"{name[:200]} has {len(topic.queues)} subscriber(s); they must leave "
                             "first")
        del broker.destinations.topics[name]
        return 0
    queue = queue_of(broker, name)
    if queue.consumers or queue.in_flight:
        raise AdminError(409, f"{name[:200]} has {len(queue.consumers)} consumer(s) and {queue.in_flight} "
                         "message(s) in flight; they must leave first")
    purged = await purge(broker, queue)
    if broker.destinations.queues.get(name) is queue and not (queue.depth or queue.consumers or queue.busy()):
        del broker.destinations.queues[name]
    return purged


def _check_queue_name(name: str) -> None:
    if not name.startswith(QUEUE_PREFIX) or len(name) == len(QUEUE_PREFIX) or len(name) > 1024:
        kind = "topics take no moved messages" if name.startswith(TOPIC_PREFIX) else "expected /queue/NAME"
        raise AdminError(400, f"invalid target {name[:200]!r}: {kind}")


def _make_queue(broker: Broker, name: str) -> Queue:
    try:
        return broker.destinations.queue(name)
    except ClientError as exc:
        raise AdminError(409, f"cannot create {name[:200]}: {exc.detail}") from exc


def _find(queue: Queue, ids: set[str]) -> list[Message]:
    return [m for m in queue.messages() if m.message_id in ids]


async def _read_one(queue: Queue, message_id: str) -> Message | None:
    """The paged message with this id (None: not one of the queue's paged messages)."""
    if queue.cursor is None:
        return None
    try:
        return await queue.cursor.read_one(message_id)
    except StoreError as exc:
        raise AdminError(503, f"reading the store failed: {exc}") from exc


async def _commit(broker: Broker, ops: list[Op], undo: object,
                  started: Callable[[asyncio.Future[None]], None] | None = None) -> None:
    """Write `ops` (nothing to write: done); on failure call `undo` and raise AdminError 503.
    `started` is called with the write's future the moment it is started."""
    if not ops:
        return
    if broker.store is None or broker.fenced:
        _undo(undo)
        raise AdminError(503, "this broker is not master (its store is fenced off)")
    try:
        write = broker.write(ops)
        if started is not None:
            started(write)
        await asyncio.shield(write)
    except Exception as exc:
        _undo(undo)
        raise AdminError(503, f"the store refused the write: {exc}") from exc


def _undo(undo: object) -> None:
    if callable(undo):
        undo()
