"""Group commit: concurrent writers share one executor hop and one fsync.

Writers call `submit(ops)` and await. A single flusher task takes everything queued since the
last flush, hands the whole lot to the store's blocking `apply(batches, sync)` in a dedicated
thread (one hop per batch, not per message), re-checks the fence, and only then resolves the
waiters, so nothing is acknowledged that is not durable or that a newer master will not honour.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

from config.model import SyncPolicy
from stores.base import Fence, Op, Store, StoreClosed, StoreError

Apply = Callable[[list[Sequence[Op]], bool], None]


class GroupCommitter:
    def __init__(
        self,
        apply: Apply,
        sync: Callable[[], None],
        fence: Fence,
        policy: SyncPolicy = "always",
        interval: float = 1.0,
        on_commit: Callable[[int, float], None] | None = None,
        max_batch: int = 4096,
    ) -> None:
        self._apply = apply
        self._sync = sync
        self._fence = fence
        self._policy = policy
        self._interval = interval
        self._on_commit = on_commit
        self._max_batch = max_batch
        self._pending: list[tuple[Sequence[Op], asyncio.Future[None]]] = []
        self._wake = asyncio.Event()
        self._closed: BaseException | None = None
        # One thread: the store's files are only ever touched by it, in submission order.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store-writer")
        self._tasks: set[asyncio.Task[None]] = set()
        self._inflight: set[asyncio.Future[None]] = set()

    def start(self) -> None:
        self._own(asyncio.get_running_loop().create_task(self._flusher()))
        if self._policy == "periodic":
            self._own(asyncio.get_running_loop().create_task(self._periodic_sync()))

    def _own(self, task: asyncio.Task[None]) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def submit(self, ops: Sequence[Op]) -> None:
        if self._closed is not None:
            raise StoreClosed(str(self._closed))
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((ops, future))
        self._wake.set()
        await future

    async def run_in_writer(self, fn: Callable[[], object]) -> object:
        """Run `fn` on the writer thread, serialized with writes (checkpoints, cleanup)."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn)

    async def _flusher(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                batch = self._pending[: self._max_batch]
                del self._pending[: self._max_batch]
                # Shielded and tracked apart: close() cancels this task, but a group already
                # handed to the writer thread must still resolve its waiters, or they wait forever.
                commit = asyncio.ensure_future(self._commit(batch))
                self._inflight.add(commit)
                commit.add_done_callback(self._inflight.discard)
                await asyncio.shield(commit)

    async def _commit(self, batch: list[tuple[Sequence[Op], asyncio.Future[None]]]) -> None:
        started = time.perf_counter()
        error: BaseException | None = None
        try:
            await self.run_in_writer(lambda: self._apply([ops for ops, _ in batch], self._policy == "always"))
            self._fence.check()
        except StoreClosed as exc:
            error = exc
            self._closed = exc
        except OSError as exc:
            error = StoreError(f"write failed, nothing from this batch was acknowledged: {exc}")
        except StoreError as exc:
            error = exc
        if self._on_commit is not None and error is None:
            self._on_commit(len(batch), time.perf_counter() - started)
        for _, future in batch:
            if future.done():
                continue
            if error is None:
                future.set_result(None)
            else:
                future.set_exception(error)

    async def _periodic_sync(self) -> None:
        while self._closed is None:
            await asyncio.sleep(self._interval)
            try:
                await self.run_in_writer(self._sync)
            except OSError:
                continue  # the next write reports the failure to its own waiter

    async def close(self) -> None:
        """Flush what is queued, stop the tasks and the writer thread."""
        while self._pending:
            batch = self._pending[: self._max_batch]
            del self._pending[: self._max_batch]
            await self._commit(batch)
        if self._closed is None:
            self._closed = StoreClosed("store closed")
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, *self._inflight, return_exceptions=True)
        if self._policy != "never":
            await self.run_in_writer(self._sync)
        self._executor.shutdown(wait=True)


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
