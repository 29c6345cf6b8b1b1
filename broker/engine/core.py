"""The broker engine: destinations, the SEND path, acknowledgement policy and the store behind them.

Transport-agnostic (style.md point 3): the connector hands each connection to `handler_factory`, which
returns a Session; sessions call back in here. Persistence rules (design.md section 3):

- a persistent SEND is written to the store (`AddMessage` per queue it lands in) before it is dispatched
  and before its RECEIPT; non-persistent messages never touch the store;
- an acked (or auto-acked) stored message is removed with `RemoveMessage`; removals are batched per
  event-loop turn and not awaited (losing one in a crash only means a redelivery);
- after a restart every recovered message is delivered with `redelivered:true`: the broker cannot know
  whether a consumer saw it before the crash, so it errs the JMS way ("possibly delivered");
- a durable queue keeps only a window of its persistent messages in memory (broker/engine/cursor.py):
  whether a message is held or paged is decided where its write is started (`_page`), in store order.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import logging
import uuid
from collections.abc import Callable, Hashable
from typing import TYPE_CHECKING, Protocol, TypedDict

from broker.engine.auth import AllowAll, Authenticator
from broker.engine.cursor import Cursor
from broker.engine.dedup import ProducerWindow
from broker.engine.destinations import (
    DLQ,
    QUEUE_PREFIX,
    Destinations,
    Durable,
    durable_key,
    is_temp,
    is_topic,
)
from broker.engine.errors import ClientError, StoreFull
from broker.engine.flow import targets
from broker.engine.guard import Guard
from broker.engine.login import LoginThrottle
from broker.engine.message import Message, now_ms
from broker.engine.policies import Policies, Resolved
from broker.engine.queue import Queue
from broker.engine.replay import Replay
from broker.engine.selector import SelectorError, compile_selector
from broker.engine.slicing import Slicer
from broker.engine.spill import Spill, TempSpace
from broker.engine.tempdest import TempDestinations
from config.model import BrokerConfig
from stores.base import (
    AddMessage,
    DropSubscription,
    DurableSubscription,
    Op,
    PutSubscription,
    Recovered,
    RemoveMessage,
    Store,
    StoreClosed,
)
from transports.memory import MemoryBudget, Share

if TYPE_CHECKING:
    from broker.engine.session import Session
    from broker.engine.transaction import Transaction
    from stores.usage import StoreUsage
    from transports.base import FrameLink
    from transports.stomp.frame import Frame


class AnswerGate(Protocol):
    """What the engine asks before every CONNECTED and RECEIPT (the HA master's lease)."""

    def valid(self) -> bool: ...


log = logging.getLogger(__name__)

Write = asyncio.Future[None] | None
STOP_TIMEOUT = 5.0


# Applies a SEND or COMMIT once its write is done; a future if delivery continues on later turns.
Apply = Callable[[], "asyncio.Future[None] | None"]


def _nothing() -> None:
    return None



class BrokerStats(TypedDict):
    connections: int
    fenced: bool
    destinations: dict[str, dict[str, int]]  # name -> counters, as Destinations.stats()


async def _all_done(futures: list[asyncio.Future[None]]) -> None:
    for future in futures:
        await future


class Broker:
    def __init__(
        self, config: BrokerConfig, store: Store | None = None, authenticator: Authenticator | None = None
    ) -> None:
        self.config = config
        self.limits = config.limits
        self.store = store
        # Durable queues page to the store (cursor.py); a hot standby, which gets its store only at
        # takeover, sets this before it builds anything.
        self.paging = store is not None
        self.slicer = Slicer(self.limits.work_slice_ms / 1000)  # dispatch and fan-out left for later turns
        # The one memory budget (docs/memory.md): destinations here, connections through the
        # connectors, which the master (or tests/helpers/server.py) hands it to.
        self.memory = MemoryBudget.from_limits(self.limits)
        self.policies = Policies(config)  # [[policy]] compiled once; destinations share the results
        self.destinations = Destinations(self, config.limits.max_destinations)
        self.temps = TempDestinations(self.destinations)  # temporary destinations and their owners
        self.producers = ProducerWindow(config.store.duplicate_window)
        self.sessions: set[Session] = set()
        self.client_ids: dict[str, Session] = {}
        self.fenced = False
        self.on_fence_lost: Callable[[], None] | None = None  # the daemon's hook: drop every connection
        self.lease: AnswerGate | None = None  # set by the master term; None when run without the lock
        self.usage: StoreUsage | None = None  # the store's disk limit (stores/usage.py); None: no limit
        # The temporary store that queues, temporary queues and durable subscriptions spill
        # non-persistent messages to (spill.py); set by the master before start(), None: they stay
        # in memory under the memory limits.
        self.temp: TempSpace | None = None
        self.authenticator: Authenticator = authenticator or AllowAll()  # asked by every CONNECT
        authn = config.authentication
        self.logins = LoginThrottle(authn.failure_delay, authn.max_failure_delay)
        self.guard = Guard(config.authorization, self.destinations)  # rights and owners
        self._tasks: set[asyncio.Future[None]] = set()  # store writes not yet done
        self._removals: list[Op] = []
        self._gc: asyncio.Task[None] | None = None  # the destination GC, from start() to stop()
        self._last_removal: asyncio.Future[None] | None = None
        self._prefix = f"ID:{config.name}-{uuid.uuid4().hex[:12]}-"
        self._message_seq = itertools.count(1)
        self._session_seq = itertools.count(1)

    # -- lifecycle ----------------------------------------------------------------------------------

    async def start(self, recovered: Recovered | None = None) -> None:
        """Recover (unless the destinations are built already: the hot standby's), then start the GC."""
        if recovered is not None:
            self._recover(recovered)
        self.start_cursors()  # here, not in _recover: an adopted standby broker got its store just now
        durables = (d.queue for d in self.destinations.durables.values())
        for queue in [*self.destinations.queues.values(), *durables]:  # an adopted standby's have none
            if queue.spill is None:
                queue.spill = self.spill_for(queue)
        if self._gc is None:
            limits = self.limits
            self._gc = asyncio.get_running_loop().create_task(
                self.destinations.collect_forever(limits.destination_gc_interval, limits.destination_gc_idle),
                name="destination-gc")

    def _recover(self, recovered: Recovered) -> None:
        self.producers = ProducerWindow(self.config.store.duplicate_window, recovered.producer_ids)
        Replay(self).load(recovered)
        log.info("recovered %d queues, %d durable subscriptions, %d producer ids",
                 len(recovered.queues), len(recovered.subscriptions), len(recovered.producer_ids))

    # The two steps of a replay (broker/engine/replay.py), shared by cold recovery and the hot
    # standby, which builds the same destinations off the event loop while the broker is a slave.

    def recover_subscription(self, sub: DurableSubscription) -> None:
        selector = None
        if sub.selector:
            try:
                selector = compile_selector(sub.selector, self.limits)
            except SelectorError:
                log.warning("durable subscription %s: stored selector no longer parses; ignored", sub.key)
        queue = Queue(sub.key, self, durable=True, policy=self.policy_for(sub.destination))
        durable = Durable(sub.key, sub.client_id, sub.name, sub.destination, sub.selector, queue,
                          owner=sub.owner)
        self.destinations.add_durable(durable, selector)

    def recovered_queue(self, key: str) -> Queue | None:
        """The queue that serves messages stored under `key` (None: a key nobody serves)."""
        if key in self.destinations.durables:
            return self.destinations.durables[key].queue
        if key.startswith(QUEUE_PREFIX):
            return self.destinations.queue(key)
        return None

    def policy_for(self, destination: str) -> Resolved:
        """A destination's settings; a durable subscription's queue takes its topic's."""
        return self.policies.for_destination(destination)

    def memory_share(self, name: str, policy: Resolved) -> Share:
        return self.memory.destination(name, policy.memory_limit, policy.memory_setting)

    def cursor_for(self, queue: Queue) -> Cursor | None:
        return Cursor(queue, self, queue.policy.cursor_window) if self.paging else None

    def spill_for(self, queue: Queue) -> Spill | None:
        """`/queue/` destinations, temporary queues and durable subscriptions (Queue asks for its
        durable queues only) spill non-persistent messages beyond their window, with a temporary
        store (limits.non_persistent = "spill", on a master); a temporary queue its persistent ones
        too, as the store never holds them."""
        if self.temp is None:
            return None
        # A [[policy]]'s window, as paging's.
        return Spill(queue, self.temp, queue.policy.cursor_window, persistent=is_temp(queue.name))

    @property
    def id_prefix(self) -> str:
        """Every message id this broker makes starts with it (a message stored during this open)."""
        return self._prefix

    def start_cursors(self) -> None:
        """After a recovery or a takeover: each queue's reader reads after the messages it holds."""
        queues = [*self.destinations.queues.values(), *(d.queue for d in self.destinations.durables.values())]
        for queue in queues:
            if queue.cursor is not None:
                # Recovery and the standby put messages in store order, so the last of each
                # priority is the furthest of that priority: the highest position is among them.
                for level in queue.levels():
                    if level and level[-1].stored:
                        queue.cursor.track(level[-1])
                queue.cursor.need()

    def handler_factory(self, conn: FrameLink) -> Session:
        from broker.engine.session import Session

        session = Session(self, conn, f"{self._prefix}s{next(self._session_seq)}")
        self.sessions.add(session)
        return session

    async def stop(self) -> None:
        """Let in-flight store writes finish (bounded), then drop what is left."""
        if self._gc is not None:
            self._gc.cancel()
            await asyncio.wait([self._gc])  # wait, not await: its cancellation is not ours
            self._gc = None
        self._flush_removals()
        pending = [s.completions.idle() for s in self.sessions]
        if pending:
            await asyncio.wait([asyncio.ensure_future(p) for p in pending], timeout=STOP_TIMEOUT)
        self._flush_removals()
        if self._tasks:
            _, late = await asyncio.wait(set(self._tasks), timeout=STOP_TIMEOUT)
            for task in late:
                task.cancel()
        for session in list(self.sessions):
            session.completions.cancel()

    def fence_lost(self) -> None:
        """The shared lock is gone: accept no more work and acknowledge nothing (design.md section 2)."""
        if self.fenced:
            return
        self.fenced = True
        log.error("broker %s: store fenced off (lock lost): refusing SENDs, sending no RECEIPTs",
                  self.config.name)
        if self.on_fence_lost is not None:
            self.on_fence_lost()

    def may_answer(self) -> bool:
        """May we say CONNECTED or RECEIPT now? Not once fenced, nor on a lease we cannot renew.

        A master resumed after a pause (SIGSTOP, VM freeze) finds its lease expired and re-verifies
        the lock before answering anyone, so a deposed master never acknowledges anything.
        """
        if self.fenced:
            return False
        if self.lease is not None and not self.lease.valid():
            self.fence_lost()
            return False
        return True

    def check_accepting(self) -> None:
        if self.fenced:
            raise ClientError("broker is not master",
                              "this broker lost the shared lock; reconnect to the master")

    def session_closed(self, session: Session) -> None:
        self.sessions.discard(session)
        if session.client_id is not None and self.client_ids.get(session.client_id) is session:
            del self.client_ids[session.client_id]

    def claim_client_id(self, session: Session, client_id: str) -> None:
        self.guard.check_client_id(client_id, session.owner)
        if client_id in self.client_ids:
            raise ClientError("client-id in use", f"client-id {client_id[:100]!r} is already connected")
        self.client_ids[client_id] = session

    def stats(self) -> BrokerStats:
        return {"connections": len(self.sessions), "fenced": self.fenced,
                "destinations": self.destinations.stats()}

    def new_message_id(self) -> str:
        return f"{self._prefix}{next(self._message_seq)}"

    # -- store --------------------------------------------------------------------------------------

    def write(self, ops: list[Op], source: Hashable = None) -> asyncio.Future[None]:
        """Start a store write. `source` is what group commits share fairly between (the one queue
        a SEND writes to, or REMOVALS); None keeps the write's place among everyone's
        (stores/fairqueue.py)."""
        assert self.store is not None
        # start_write, not a task around write(): on the SEND path a task per message costs a task
        # step and a loop turn more than waiting on the store's own future (see Store.start_write).
        task = self.store.start_write(ops, source)
        if self.usage is not None:
            _note_usage(self.usage, ops)
        self._tasks.add(task)
        task.add_done_callback(self._written)
        return task

    def _written(self, task: asyncio.Future[None]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        error = task.exception()  # retrieved here so that no failure goes unreported
        if isinstance(error, StoreClosed):
            self.fence_lost()
        elif error is not None:
            log.error("store write failed: %s", error)

    def forget(self, queue: Queue, message: Message) -> None:
        if not (message.stored and self.store is not None):
            return
        if not self._removals:
            asyncio.get_running_loop().call_soon(self._flush_removals)
        self._removals.append(RemoveMessage(queue.name, message.message_id))

    def _flush_removals(self) -> None:
        if self._removals and self.store is not None and not self.fenced:
            self._last_removal = self.write(self._removals, REMOVALS)
        self._removals = []

    def removals_written(self) -> asyncio.Future[None] | None:
        """Write the queued removals now; the result is done once they and all earlier ones are durable.

        Acks are written lazily (a lost one only means a redelivery), but an ACK or DISCONNECT that
        asks for a RECEIPT gets it only after its removals are on disk: a receipted ack sticks.
        """
        self._flush_removals()
        last = self._last_removal
        if last is not None and last.done():
            self._last_removal = None
        return last

    # -- the SEND path ------------------------------------------------------------------------------

    def _targets(self, message: Message) -> list[Queue]:
        """The queues whose stored copy the message needs; NoRoom (engine/flow.py) if one of them,
        or the memory budget, is full."""
        return targets(self.destinations, message)

    def accept(self, message: Message) -> tuple[Write, Apply, Callable[[], None]]:
        """Start a SEND: returns (store write or None, apply once written, undo if the write failed)."""
        self.check_accepting()
        pid = message.producer_id
        if pid is not None and pid in self.producers:
            return self.producers.pending(pid), _nothing, _nothing  # a resend: receipt again, nothing else
        if message.expires and message.expired(now_ms()):  # most messages never expire: skip the clock
            return None, _nothing, _nothing
        durable = self._targets(message)
        write = None
        paged = _NONE
        if message.persistent and self.store is not None and durable:
            message.stored = True
            # Fair between queues, in order within each: a queue's store order is its SEND order
            # (its cursor relies on it); one message to several queues keeps its place among all.
            source = durable[0].name if len(durable) == 1 else None
            write = self.write([AddMessage(q.name, message.to_stored()) for q in durable], source)
            paged = _page(message, durable, write)
        if pid is None:
            return write, lambda: self.route(message, durable, paged), _nothing
        self.producers.add(pid, write)
        return write, lambda: self.route(message, durable, paged), lambda: self.producers.discard(pid)

    def store_full(self, frame: Frame) -> bool:
        """Must this SEND wait for disk space? Only persistent ones, only at the limit (cheap)."""
        usage = self.usage
        return usage is not None and usage.full and (frame.get("persistent") or "").lower() == "true"

    async def store_room(self) -> None:
        """Producer flow control at the disk limit: hold up to store.usage_timeout, then StoreFull."""
        usage = self.usage
        assert usage is not None
        timeout = self.config.store.usage_timeout
        if not await usage.room(timeout):
            usage.refused += 1
            raise StoreFull(usage.reason(), timeout)

    def check_room(self, message: Message) -> None:
        self._targets(message)

    def route(self, message: Message, durable: list[Queue],
              paged: frozenset[str] = frozenset()) -> asyncio.Future[None] | None:
        """Put a sent message where it goes; a future if its topic fan-out continues later. The
        queues named in `paged` keep it in the store only: their cursors counted it when written.

        The destination may have been collected while the store write ran (it was idle before
        this SEND): a queue is made again, past the limit if need be, as the message was admitted;
        a collected topic had no subscriber to deliver to.
        """
        if is_topic(message.destination):
            topic = self.destinations.topics.get(message.destination)
            return topic.publish(message, durable, paged=paged) if topic is not None else None
        if is_temp(message.destination) and message.destination not in self.destinations.queues:
            return None  # its connection ended while the SEND or COMMIT was under way: dropped with it
        if message.destination in paged:
            return None
        queue = self.destinations.queue(message.destination, limited=False)
        queue.arrive(message)
        if message.stored and queue.cursor is not None:
            queue.cursor.routed(message)
        queue.dispatch()
        return None

    def commit(self, tx: Transaction) -> tuple[asyncio.Future[None] | None, Apply]:
        """COMMIT: one atomic store write for the whole transaction, then dispatch in SEND order."""
        self.check_accepting()
        ops: list[Op] = []
        routes: list[tuple[Message, list[Queue]]] = []
        for message in tx.sends:
            if message.producer_id is not None and message.producer_id in self.producers:
                continue
            durable = self._targets(message)
            if message.persistent and self.store is not None and durable:
                message.stored = True
                ops.extend(AddMessage(q.name, message.to_stored()) for q in durable)
            routes.append((message, durable))
        pages: list[frozenset[str]] = []
        for subscription, ack_id, nack in tx.acks:
            messages = subscription.take(ack_id)
            if not nack and self.store is not None:
                ops.extend(RemoveMessage(subscription.queue.name, m.message_id) for m in messages if m.stored)
            self.settle(subscription.queue, messages, nack, stored_removal=False)
        write = self.write(ops) if ops else None
        for message, durable in routes:
            # In SEND order, right after the write: the decisions follow the store order (cursor.py).
            pages.append(_page(message, durable, write) if write is not None and message.stored else _NONE)
            if message.producer_id is not None:
                self.producers.add(message.producer_id, write)

        def apply() -> asyncio.Future[None] | None:
            fanned = [f for (message, durable), paged in zip(routes, pages, strict=True)
                      if (f := self.route(message, durable, paged)) is not None]
            if not fanned:
                return None
            return fanned[0] if len(fanned) == 1 else asyncio.ensure_future(_all_done(fanned))

        return write, apply

    # -- acknowledgements ---------------------------------------------------------------------------

    def settle(self, queue: Queue, messages: list[Message], nack: bool, stored_removal: bool = True) -> None:
        for message in messages:
            if not nack:
                queue.acked(message, stored_removal)
                continue
            queue.in_flight -= 1
            message.nacks += 1
            message.redelivered = True
            # ActiveMQ's maximumRedeliveries: redelivered that many times; the next NACK sends it to the DLQ.
            if message.nacks > self.limits.max_redeliveries:
                queue.done(message, stored_removal=False)
                self.dead_letter(queue, message)
            else:
                queue.put_front([message])
        queue.dispatch()

    def dead_letter(self, queue: Queue, message: Message) -> None:
        moved = dataclasses.replace(
            message, destination=DLQ, nacks=0, redelivered=False,
            headers={**message.headers, "original-destination": message.destination},
        )
        log.info("message %s from %s to %s after %d NACKs",
                 message.message_id, queue.name, DLQ, message.nacks)

        paged = False

        def arrive(task: asyncio.Future[None] | None = None) -> None:
            if task is not None and (task.cancelled() or task.exception() is not None):
                return  # still stored under its old queue: recovered there after a restart
            if paged:
                return  # counted by the DLQ's cursor, in the store only
            dlq = self.destinations.queue(DLQ, limited=False)  # looked up now: GC may have removed it
            dlq.put(moved)
            if moved.stored and dlq.cursor is not None:
                dlq.cursor.routed(moved)
            dlq.dispatch()

        if message.stored and self.store is not None and not self.fenced:
            ops: list[Op] = [RemoveMessage(queue.name, message.message_id),
                             AddMessage(DLQ, moved.to_stored())]
            write = self.write(ops)
            dlq = self.destinations.queue(DLQ, limited=False)
            paged = bool(_page(moved, [dlq], write))
            write.add_done_callback(arrive)
        else:
            moved.stored = False
            arrive()

    # -- durable topic subscriptions ----------------------------------------------------------------

    def attach_durable(
        self, client_id: str, name: str, topic: str, selector_text: str | None,
        selector: Callable[[Message], bool | None] | None, owner: str | None = None,
    ) -> tuple[Durable, asyncio.Future[None] | None]:
        key = durable_key(client_id, name)
        durable = self.destinations.durables.get(key)
        if durable is not None:
            self.guard.check_durable(durable, client_id, name, owner)
        if durable is not None and durable.attached:
            raise ClientError("durable subscription in use",
                              f"{name[:100]!r} of client-id {client_id[:100]!r} is already active")
        write = None
        if durable is not None and (durable.topic != topic or durable.selector_text != selector_text):
            write = self.drop_durable(key)  # as JMS: a changed topic or selector replaces the subscription
            durable = None
        if durable is None or (durable.owner is None and owner is not None):
            if durable is None:
                queue = Queue(key, self, durable=True, policy=self.policy_for(topic))
                durable = Durable(key, client_id, name, topic, selector_text, queue)
                self.destinations.add_durable(durable, selector)
            durable.owner = owner  # new, or unowned and claimed by the first user to attach it
            if self.store is not None:
                record = DurableSubscription(key, client_id, name, topic, selector_text, owner)
                write = self.write([PutSubscription(record)])
        durable.attached = True
        return durable, write

    def drop_durable(self, key: str) -> asyncio.Future[None] | None:
        durable = self.destinations.remove_durable(key)
        if durable is None:
            return None
        durable.queue.drain()
        if durable.queue.cursor is not None:
            durable.queue.cursor.clear()
        if durable.queue.spill is not None:
            durable.queue.spill.clear()  # non-persistent: their records go, no store write
        return self.write([DropSubscription(key)]) if self.store is not None else None


_NONE: frozenset[str] = frozenset()
# The source of acknowledged messages' removals: they may be written beside anyone's writes
# (a removal is only ever queued after its message's addition was synced).
REMOVALS: Hashable = ("removals",)


def _page(message: Message, durable: list[Queue], write: asyncio.Future[None]) -> frozenset[str]:
    """Right after `write` was started: the queues that keep `message` in the store only."""
    paged = [q.name for q in durable if q.cursor is not None and q.cursor.decide(message, write)]
    return frozenset(paged) if paged else _NONE


# What one stored message costs on disk beyond its body (record header, ids, headers), roughly.
_RECORD_OVERHEAD = 256
_REMOVE_BYTES = 64


def _note_usage(usage: StoreUsage, ops: list[Op]) -> None:
    added = removed = 0
    for op in ops:
        if isinstance(op, AddMessage):
            added += len(op.message.body) + _RECORD_OVERHEAD
        else:
            removed += 1
    usage.note(added + removed * _REMOVE_BYTES, removed)
