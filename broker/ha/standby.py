"""Hot standby (docs/hot-standby.md): while a slave waits for the lock, keep its broker ready.

Following is an optional capability of the store contract (`Store.follower`): a store that has it
gives a read-only follower that tails the shared store and reports the live state, then every
change in order. `Standby` feeds both into a `Broker` that has no store and no connectors through
the engine's one replay path (`broker.engine.replay.Replay`, which cold recovery uses too), so
that at takeover the master need not build a million `Message`s: once the store's warm open has
replayed the last records, the master adopts this broker instead of calling
`Broker.start(recovered)`. Its durable queues page (broker/engine/cursor.py) without a store:
beyond a window of messages it only counts them, so its memory does not track the master's backlog;
once adopted, each queue's cursor reads the rest from the new master's store.

The journal and append-log stores can be followed; leveldb slaves recover cold (its `follower()`
is None) until it offers one. Anything the replay cannot mirror marks the standby `invalid`;
the master then builds the broker cold from what the store recovered. The follower and the
replay run in one worker thread; the event loop only starts and stops them, and the master
touches the broker only after `stop()`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from broker.engine.core import Broker
from broker.engine.dedup import ProducerWindow
from broker.engine.replay import Replay, ReplayMismatch
from config.model import BrokerConfig
from stores.base import FollowInterrupted, Op, Recovered, Store, StoreFollower
from stores.registry import create_follower

log = logging.getLogger("batonmq.standby")

POLL_INTERVAL = 0.03  # seconds between polls when the follower is caught up (a stat each)


class Standby:
    def __init__(self, config: BrokerConfig) -> None:
        self.config = config
        self.follower: StoreFollower | None = None  # set by for_config
        self.broker: Broker | None = None
        self.replay: Replay | None = None
        self.invalid: str | None = "not built yet"  # why the broker cannot be adopted
        self._task: asyncio.Future[None] | None = None
        self.failed = False
        self._stop = asyncio.Event()
        self.caught_up_at: float | None = None  # monotonic time of the last poll that found nothing new

    @classmethod
    def for_config(cls, config: BrokerConfig) -> Standby | None:
        """A standby for the configured store, or None when that store cannot be followed."""
        standby = cls(config)
        standby.follower = create_follower(config.data_dir, config.store, standby)
        return standby if standby.follower is not None else None

    def _following(self) -> StoreFollower:
        assert self.follower is not None, "a Standby is made by for_config, which sets its follower"
        return self.follower

    # Following (event loop side) ----------------------------------------------------------

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        was_ready = False
        while not self._stop.is_set():
            try:
                more = await asyncio.to_thread(self._following().poll)
            except Exception:  # a bug: a half-applied state must not be adopted
                log.exception("broker %s: hot standby failed; the takeover will be cold", self.config.name)
                self.failed = True
                return
            ready = self._following().ready and self.invalid is None
            if ready and not was_ready:
                log.info("broker %s: hot standby ready: %s", self.config.name, self.describe())
            was_ready = ready
            if not more:
                self.caught_up_at = time.monotonic()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), POLL_INTERVAL)

    async def stop(self) -> None:
        """Stop following; a poll in progress returns at its next record or file boundary."""
        self._stop.set()
        self._following().interrupt()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)

    async def close(self) -> None:
        await self.stop()
        self._following().close()
        self.broker, self.replay = None, None

    def lag(self) -> float | None:
        """Seconds since the follower last had read everything written (None: never yet); a few
        hundredths while it keeps up, growing while the master writes faster than it follows."""
        if self.caught_up_at is None or not self.ready():
            return None
        return max(0.0, time.monotonic() - self.caught_up_at)

    def ready(self) -> bool:
        follower = self.follower
        return follower is not None and follower.ready and self.invalid is None and not self.failed

    def describe(self) -> str:
        replay, follower = self.replay, self.follower
        depths = replay.depths() if replay is not None else {}
        count, queues = sum(depths.values()), len(depths)
        where = follower.position() if follower is not None else "nothing"
        return f"{count} message(s) in {queues} queue(s), following {where}"

    # Takeover -------------------------------------------------------------------------------

    async def hand_over(self, store: Store) -> bool:
        """Stop following and give the follower to the store, whose open() then finishes it."""
        await self.stop()
        follower = self.follower
        if self.failed or follower is None or not follower.ready or not store.follow_from(follower):
            why = "it failed" if self.failed else (follower.reason if follower is not None else None)
            log.warning("broker %s: hot standby not used (%s): cold recovery", self.config.name,
                        why or "the store did not take the follower")
            return False
        return True

    def adopt(self, store: Store, recovered: Recovered) -> Broker | None:
        """The warm broker, with the opened store attached; None if it does not match `recovered`."""
        broker, self.broker = self.broker, None
        if not store.warm or broker is None:
            return None
        problem = self.invalid or self._mismatch(recovered)
        if problem:
            log.warning("broker %s: hot standby broker not used (%s): building it cold", self.config.name,
                        problem)
            return None
        broker.store = store
        broker.producers = ProducerWindow(self.config.store.duplicate_window, recovered.producer_ids)
        log.info("broker %s: hot standby: adopted the warm broker (%s)", self.config.name, self.describe())
        self.replay = None
        return broker

    def _mismatch(self, recovered: Recovered) -> str | None:
        """A cheap cross-check of the mirror against the store (per queue counts, subscriptions)."""
        ours = self.replay.depths() if self.replay is not None else {}
        keys = {*recovered.queues, *recovered.depths}
        theirs = {key: depth for key in keys if (depth := recovered.depth(key))}
        differ = sorted(key for key in {*ours, *theirs} if ours.get(key) != theirs.get(key))
        if differ:
            return f"message counts of {differ[0]!r} differ from the store's"
        return None

    # FollowerSink (worker thread) -----------------------------------------------------------

    def reset(self, recovered: Recovered) -> None:
        """Build from scratch, as cold recovery does, checking for an interrupt now and then."""
        self.broker, self.replay, self.invalid = None, None, "rebuilding"
        broker = Broker(self.config, None)
        broker.paging = True  # its queues page as the master's do, counting what it does not hold
        replay = Replay(broker, track=True, on_progress=self._check_interrupt)
        try:
            replay.load(recovered, strict=True)
        except ReplayMismatch as exc:
            self.invalid = str(exc)
            return
        self.broker, self.replay, self.invalid = replay.broker, replay, None

    def _check_interrupt(self) -> None:
        follower = self.follower
        if follower is not None and follower.interrupted():
            raise FollowInterrupted()

    def changed(self, ops: list[Op]) -> None:
        if self.invalid is not None or self.replay is None:
            return
        try:
            for op in ops:
                self.replay.apply(op)
        except Exception as exc:  # any surprise: the master builds cold instead
            self.invalid = f"{type(exc).__name__}: {exc}"
            log.warning("broker %s: hot standby broker dropped: %s", self.config.name, self.invalid)
