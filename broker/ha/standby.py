"""Hot standby (docs/hot-standby.md): while a slave waits for the lock, keep its broker ready.

A `Follower` (stores/journal/follower.py) tails the shared journal read-only and reports the
live state, then every change in order. `Standby` mirrors that into a `Broker` that has no store
and no connectors, so that at takeover the master need not build a million `Message`s: once the
store's warm open has replayed the last records, the master adopts this broker instead of
calling `Broker.start(recovered)`. The result is the broker cold recovery would build:
`Broker._recover`'s own steps (`recover_subscription`, `recovered_queue`, `from_stored`, so
every message is `redelivered`), applied as the records come.

Only the journal store has a follower; leveldb and appendlog slaves recover cold. Anything this
mirror does not model (a message stored twice, messages under a key nobody serves, too many
destinations) marks it `invalid`; the master then builds the broker cold from what the store
recovered. The follower and this mirror run in one worker thread; the event loop only starts
and stops them, and the master touches the broker only after `stop()`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from broker.engine.core import Broker
from broker.engine.dedup import ProducerWindow
from broker.engine.message import Message, from_stored
from broker.engine.queue import Queue
from config.model import BrokerConfig
from stores.base import AddMessage, DropSubscription, Op, PutSubscription, Recovered, RemoveMessage, Store
from stores.journal.follower import Follower, Interrupted
from stores.journal.store import JournalStore

log = logging.getLogger("batonmq.standby")

POLL_INTERVAL = 0.03  # seconds between polls when the follower is caught up (a stat each)
BUILD_CHECK = 10_000  # messages between interrupt checks while building from scratch


class Standby:
    def __init__(self, config: BrokerConfig) -> None:
        self.config = config
        self.follower = Follower(config.data_dir / "journal", config.store.duplicate_window, self)
        self.broker: Broker | None = None
        self.messages: dict[str, dict[str, Message]] = {}  # stored key → message id → waiting Message
        self.invalid: str | None = "not built yet"  # why the broker cannot be adopted
        self._task: asyncio.Future[None] | None = None
        self.failed = False
        self._stop = asyncio.Event()

    @classmethod
    def for_config(cls, config: BrokerConfig) -> Standby | None:
        return cls(config) if config.store.type == "journal" else None

    # Following (event loop side) ----------------------------------------------------------

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        was_ready = False
        while not self._stop.is_set():
            try:
                more = await asyncio.to_thread(self.follower.poll)
            except Exception:  # a bug: a half-applied state must not be adopted
                log.exception("broker %s: hot standby failed; the takeover will be cold", self.config.name)
                self.failed = True
                return
            ready = self.follower.ready and self.invalid is None
            if ready and not was_ready:
                log.info("broker %s: hot standby ready: %s", self.config.name, self.describe())
            was_ready = ready
            if not more:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), POLL_INTERVAL)

    async def stop(self) -> None:
        """Stop following; a poll in progress returns at its next record or file boundary."""
        self._stop.set()
        self.follower.interrupt()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)

    async def close(self) -> None:
        await self.stop()
        self.follower.close()
        self.broker, self.messages = None, {}

    def describe(self) -> str:
        count = sum(len(entries) for entries in self.messages.values())
        return f"{count} message(s) in {len(self.messages)} queue(s), following {self.follower.position()}"

    # Takeover -------------------------------------------------------------------------------

    async def hand_over(self, store: Store) -> bool:
        """Stop following and give the follower to a journal store, whose open() then finishes it."""
        await self.stop()
        if self.failed or not isinstance(store, JournalStore) or not self.follower.ready:
            why = "it failed" if self.failed else self.follower.reason or "not a journal store"
            log.warning("broker %s: hot standby not used (%s): cold recovery", self.config.name, why)
            return False
        store.follow_from(self.follower)
        return True

    def adopt(self, store: Store, recovered: Recovered) -> Broker | None:
        """The warm broker, with the opened store attached; None if it does not match `recovered`."""
        broker, self.broker = self.broker, None
        if not (isinstance(store, JournalStore) and store.warm) or broker is None:
            return None
        problem = self.invalid or self._mismatch(recovered)
        if problem:
            log.warning("broker %s: hot standby broker not used (%s): building it cold", self.config.name,
                        problem)
            return None
        broker.store = store
        broker.producers = ProducerWindow(self.config.store.duplicate_window, recovered.producer_ids)
        log.info("broker %s: hot standby: adopted the warm broker (%s)", self.config.name, self.describe())
        self.messages = {}
        return broker

    def _mismatch(self, recovered: Recovered) -> str | None:
        """A cheap cross-check of the mirror against the store (per queue counts, subscriptions)."""
        ours = {key: len(entries) for key, entries in self.messages.items()}
        theirs = {key: len(messages) for key, messages in recovered.queues.items()}
        if ours != theirs:
            return "message counts differ from the store's"
        return None

    # FollowerSink (worker thread) -----------------------------------------------------------

    def reset(self, recovered: Recovered) -> None:
        """Build from scratch, as `Broker._recover` does, checking for an interrupt now and then."""
        self.broker, self.messages, self.invalid = None, {}, "rebuilding"
        broker = Broker(self.config, None)
        for sub in recovered.subscriptions:
            broker.recover_subscription(sub)
        built = 0
        for key, stored in recovered.queues.items():
            queue = broker.recovered_queue(key)
            if queue is None:
                self.invalid = f"messages under {key!r}, which nobody serves"
                return
            entries = self.messages[key] = {}
            for item in stored:
                message = from_stored(item)
                queue.put(message)
                entries[item.message_id] = message
                built += 1
                if built % BUILD_CHECK == 0 and self.follower.interrupted():
                    raise Interrupted()
        self.broker, self.invalid = broker, None

    def changed(self, ops: list[Op]) -> None:
        if self.invalid is not None or self.broker is None:
            return
        try:
            for op in ops:
                self._mirror(self.broker, op)
        except Exception as exc:  # any surprise: the master builds cold instead
            self.invalid = f"{type(exc).__name__}: {exc}"
            log.warning("broker %s: hot standby broker dropped: %s", self.config.name, self.invalid)

    def _mirror(self, broker: Broker, op: Op) -> None:
        if isinstance(op, AddMessage):
            entries = self.messages.setdefault(op.queue, {})
            queue = broker.recovered_queue(op.queue)
            if op.message.message_id in entries or queue is None:
                raise ValueError(f"message {op.message.message_id!r} of {op.queue!r} cannot be mirrored")
            message = from_stored(op.message)
            queue.put(message)
            entries[op.message.message_id] = message
        elif isinstance(op, RemoveMessage):
            entries = self.messages[op.queue]
            message = entries.pop(op.message_id)
            queue = self._queue(broker, op.queue)
            if not queue.withdraw(message):
                raise ValueError(f"message {op.message_id!r} was not waiting in {op.queue!r}")
            if not entries:
                del self.messages[op.queue]
                if op.queue in broker.destinations.queues:  # cold recovery has no empty /queue/
                    del broker.destinations.queues[op.queue]
        elif isinstance(op, PutSubscription):
            sub, durable = op.subscription, broker.destinations.durables.get(op.subscription.key)
            if durable is None and sub.key not in self.messages:
                broker.recover_subscription(sub)
                return
            same = durable is not None and (durable.client_id, durable.name, durable.topic,
                                            durable.selector_text) == (sub.client_id, sub.name,
                                                                       sub.destination, sub.selector)
            if not same:
                raise ValueError(f"subscription {sub.key!r} changed in place")
        elif isinstance(op, DropSubscription):
            self.messages.pop(op.key, None)
            durable = broker.destinations.remove_durable(op.key)
            if durable is not None:
                durable.queue.drain()
                topic = broker.destinations.topics.get(durable.topic)
                if topic is not None and not topic.queues:  # cold recovery makes topics only for subs
                    del broker.destinations.topics[durable.topic]

    @staticmethod
    def _queue(broker: Broker, key: str) -> Queue:
        durable = broker.destinations.durables.get(key)
        return durable.queue if durable is not None else broker.destinations.queues[key]
