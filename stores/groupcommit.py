"""Group commit: concurrent writers share one hand-off to the writer thread and one fsync.

Writers call `submit(ops)` (or `submit_nowait`) and wait. The first write to an idle committer
hands a group to the store's blocking `apply(batches, sync)` on a dedicated thread at once (one hop
per group, not per message); that thread takes what is queued when it starts, which is the whole
burst of writes the loop made in that turn (it cannot run before the loop lets go of the GIL); what
arrives while that group is on disk forms the next group. Writes are queued per source (for the
broker, the queue a SEND goes to): while several have writes pending, a group takes a bounded share
of each, the smallest first (stores/fairqueue.py), so one producer's pipeline cannot be written
ahead of another connection's single write. Back on the loop the fence is re-checked, and only then
are the waiters resolved, so nothing is acknowledged that is not durable or that a newer master
will not honour.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Callable, Hashable, Sequence
from functools import partial
from typing import cast

from config.model import SyncPolicy
from stores.base import Fence, Op, Store, StoreClosed, StoreError
from stores.fairqueue import FairQueue

log = logging.getLogger(__name__)

Apply = Callable[[list[Sequence[Op]], bool], None]
# A job for the writer thread, and what to call on the loop with (result, error) when it is done.
Done = Callable[[object, BaseException | None], None]
_STOP = None
Batch = list[tuple[Sequence[Op], "asyncio.Future[None]"]]  # a group's writes and their waiters
# Writes of one source per group while others wait too: a producer's 128 SENDs in flight take four
# groups beside another queue's one write, which goes into the first of them.
FAIR_SHARE = 32


class GroupCommitter:
    """Driven by callbacks, not by a flusher task: a group's hand-off is one queue put to the writer
    thread and one `call_soon_threadsafe` back, with no task, shield or executor future chain per
    group. With one producer waiting for each receipt every message is its own group, so this
    per-group cost is paid per message."""

    def __init__(
        self,
        apply: Apply,
        sync: Callable[[], None],
        fence: Fence,
        policy: SyncPolicy = "always",
        interval: float = 1.0,
        on_commit: Callable[[int, float], None] | None = None,
        max_batch: int = 4096,
        share: int = FAIR_SHARE,
    ) -> None:
        self._apply = apply
        self._sync = sync
        self._fence = fence
        self._policy = policy
        self._interval = interval
        self._on_commit = on_commit
        self._pending: FairQueue[tuple[Sequence[Op], asyncio.Future[None]]] = FairQueue(share, max_batch)
        self._pending_lock = threading.Lock()  # the loop pushes, the writer thread takes
        self._closed: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._group: asyncio.Future[None] | None = None  # the group on the writer thread, if any
        # One thread: the store's files are only ever touched by it, in submission order. A daemon,
        # so a store never closed cannot hold the process open; dying mid-write is a kill -9 to the
        # store (a torn tail, recovered), and nothing was acknowledged before its write returned.
        self._jobs: queue.SimpleQueue[tuple[Callable[[], object], Done] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._work, name="store-writer", daemon=True)
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopped = False

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._thread.start()
        if self._policy == "periodic":
            task = self._loop.create_task(self._periodic_sync())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def submit(self, ops: Sequence[Op], source: Hashable = None) -> None:
        await self.submit_nowait(ops, source)

    def submit_nowait(self, ops: Sequence[Op], source: Hashable = None) -> asyncio.Future[None]:
        """Queue `ops` for the next group; the future resolves when it is durable (or failed).

        For a store's `start_write`: the broker then waits on this future itself instead of on a
        task wrapped around `submit`, one task step and loop turn fewer per message. Never raises:
        a closed committer returns a failed future, so the error reaches the caller the same way.
        `source` is what groups are shared fairly between; writes of one source are written in
        the order submitted, and those of source None in the order of all (stores/fairqueue.py).
        """
        loop = self._loop or asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        if self._closed is not None:
            future.set_exception(StoreClosed(str(self._closed)))
            return future
        with self._pending_lock:
            self._pending.push(source, (ops, future))
        if self._group is None:
            # Now, not on the next turn (a turn of latency and a poll less per receipted SEND):
            # the writer thread takes the group when it starts, after this turn's other writes.
            self._next_group()
        return future

    async def run_in_writer(self, fn: Callable[[], object]) -> object:
        """Run `fn` on the writer thread, serialized with writes (checkpoints, cleanup)."""
        if self._stopped:  # as an executor after shutdown(): nobody would ever run it
            raise RuntimeError("cannot schedule new futures after shutdown")
        future: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        self._jobs.put((fn, partial(_settle, future)))
        return await future

    # -- the writer thread ---------------------------------------------------------------------

    def _work(self) -> None:
        while (job := self._jobs.get()) is not _STOP:
            fn, done = job
            result: object = None
            error: BaseException | None = None
            try:
                result = fn()
            except BaseException as exc:  # handed to the loop, like an executor future's exception
                error = exc
            assert self._loop is not None
            try:
                self._loop.call_soon_threadsafe(done, result, error)
            except RuntimeError:  # the loop is closed: nobody is waiting any more
                pass

    # -- groups (on the loop) ------------------------------------------------------------------

    def _next_group(self) -> None:
        if self._group is not None or not self._pending:
            return
        assert self._loop is not None
        self._group = self._loop.create_future()
        sync = self._policy == "always"
        started = time.perf_counter()
        self._jobs.put((partial(self._take_and_apply, sync), partial(self._written, started)))

    def _take_and_apply(self, sync: bool) -> tuple[Batch, BaseException | None]:
        """Writer thread: take the next fair group of what is queued now and apply it; never
        raises, and leaves the futures to the loop."""
        batch: Batch = []
        try:
            with self._pending_lock:
                batch = self._pending.take()
            self._apply([ops for ops, _ in batch], sync)
        except BaseException as exc:  # handed to the loop with the batch it failed
            return batch, exc
        return batch, None

    def _written(self, started: float, result: object, raised: BaseException | None) -> None:
        assert raised is None  # _take_and_apply returns its failure with its batch
        batch, failure = cast("tuple[Batch, BaseException | None]", result)
        error = self._outcome(failure)
        if self._on_commit is not None and error is None:
            try:
                self._on_commit(len(batch), time.perf_counter() - started)
            except Exception:  # metrics must not keep the writers from their answer
                log.exception("on_commit failed")
        for _, future in batch:
            if future.done():
                continue
            if error is None:
                future.set_result(None)
            else:
                future.set_exception(error)
        group, self._group = self._group, None
        if group is not None and not group.done():
            group.set_result(None)
        if self._pending:
            self._next_group()  # what queued up during this fsync goes at once, as one group

    def _outcome(self, failure: BaseException | None) -> BaseException | None:
        """The error to hand the group's writers; the fence is checked only after a good fsync."""
        try:
            if failure is not None:
                raise failure
            self._fence.check()
        except StoreClosed as exc:
            self._closed = exc
            return exc
        except OSError as exc:
            return StoreError(f"write failed, nothing from this batch was acknowledged: {exc}")
        except StoreError as exc:
            return exc
        except Exception as exc:  # a bug in apply: fail this group's writers rather than hang them
            log.exception("store write failed")
            return StoreError(f"write failed, nothing from this batch was acknowledged: {exc!r}")
        return None

    async def _periodic_sync(self) -> None:
        while self._closed is None:
            await asyncio.sleep(self._interval)
            try:
                await self.run_in_writer(self._sync)
            except OSError:
                continue  # the next write reports the failure to its own waiter

    async def close(self) -> None:
        """Flush what is queued, stop the tasks and the writer thread."""
        while self._group is not None or self._pending:
            if self._group is None:
                self._next_group()
            assert self._group is not None
            await asyncio.shield(self._group)
        if self._closed is None:
            self._closed = StoreClosed("store closed")
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        try:
            if self._policy != "never" and self._thread.is_alive():
                await self.run_in_writer(self._sync)
        finally:
            self._stopped = True
            self._jobs.put(_STOP)
            if self._thread.is_alive():
                self._thread.join()


def _settle(future: asyncio.Future[object], result: object, error: BaseException | None) -> None:
    if future.done():  # its awaiter was cancelled
        return
    if error is None:
        future.set_result(result)
    else:
        future.set_exception(error)


def start_committer(store: Store, apply: Apply, sync: Callable[[], None]) -> GroupCommitter:
    """The store's group committer, started, with its settings and fence, reporting each commit
    to `store.on_commit` as it is at that moment (the daemon may set it after construction)."""

    def report(batch: int, seconds: float) -> None:
        if store.on_commit is not None:
            store.on_commit(batch, seconds)

    committer = GroupCommitter(
        apply, sync, store.fence, store.settings.sync, store.settings.sync_interval, on_commit=report
    )
    committer.start()
    return committer
