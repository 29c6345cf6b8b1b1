"""JournalStore: the KahaDB-like default store (design section 3, FORMAT.md beside this file).

Writes: a batch is encoded on the caller's side (so a bad op fails only its own caller), then
the GroupCommitter hands every batch of a group to `_apply` on the single writer thread, which
appends them with one write, fdatasyncs once, and only then updates the index. Checkpoints and
cleanup run on the same thread, serialized with writes, except for the part that costs O(live
messages): the checkpoint's encoding and file (0.2 s for 100,000 messages) are written on a thread
of their own from a copy of the index taken on the writer thread (milliseconds), so that group
commits, and the RECEIPTs waiting for them, go on meanwhile; cleanup deletes files only once that
checkpoint is written. One checkpoint or cleanup runs at a time (`_maintenance`).

Warm open (hot standby, FORMAT.md section 6): given a `Follower` that has been tailing the files
as a slave, `open()` lets it finish its replay instead of recovering cold; the result is the same.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import logging
import time
from collections.abc import Hashable, Sequence
from pathlib import Path
from typing import cast

from config.model import StoreSettings
from stores import fsio, pacing
from stores.base import (
    Fence,
    FollowerSink,
    Op,
    Page,
    Recovered,
    Store,
    StoreClosed,
    StoredMessage,
    StoreError,
    StoreFollower,
    StoreStats,
)
from stores.groupcommit import GroupCommitter, start_committer
from stores.heads import pages_of, recovered_heads
from stores.journal import checkpoint as ckpt
from stores.journal import cleanup, layout
from stores.journal.follower import Follower
from stores.journal.index import Index, Key, Location
from stores.journal.reader import load_messages
from stores.journal.records import encode_batch
from stores.journal.recovery import RecoveryStats, Result, recover
from stores.journal.writer import Writer
from stores.reads import GatedReads, ReadGate, fetch, read_page

log = logging.getLogger(__name__)


class _Encoded(list[Op]):
    """A batch of ops with its BATCH record, encoded before it is queued."""

    record: bytes


class JournalStore(GatedReads, Store):
    kind = "journal"
    checkpoint_aside_at = 100_000  # live messages from which an open leaves its checkpoint to maintenance

    def __init__(self, directory: Path, settings: StoreSettings, fence: Fence | None = None) -> None:
        super().__init__(directory, settings, fence)
        self._index: Index | None = None
        self._writer: Writer | None = None
        self._committer: GroupCommitter | None = None
        self._epoch = 0
        self._checkpoint_pos: tuple[int, int] | None = None
        self._dirty = False
        self._closed = False
        self._tasks: set[asyncio.Task[None]] = set()
        self.last_recovery: RecoveryStats | None = None
        self._follower: Follower | None = None
        self._reads = ReadGate("journal store")
        self._maintenance = asyncio.Lock()  # one checkpoint or cleanup at a time
        self._writing: asyncio.Future[None] | None = None  # a checkpoint's file being written
        self._checkpoint_due = False  # a cold open left its checkpoint to maintenance (_open_blocking)

    # Open --------------------------------------------------------------------------------

    @classmethod
    def follower(cls, directory: Path, settings: StoreSettings, sink: FollowerSink) -> Follower:
        return Follower(directory, settings.duplicate_window, sink, settings.cursor_window)

    def follow_from(self, follower: StoreFollower) -> bool:
        """Make `open()` finish this follower's replay; it recovers cold if the follower cannot."""
        if not isinstance(follower, Follower):
            return False
        self._follower = follower
        return True

    async def open(self) -> Recovered:
        if self._committer is not None:
            raise StoreError("journal store is already open")
        self.directory.mkdir(parents=True, exist_ok=True)
        recovered = await asyncio.to_thread(self._open_blocking)
        self._committer = start_committer(self, self._apply, self._sync)
        task = asyncio.get_running_loop().create_task(self._maintain())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        self._reads.open()
        return recovered

    def _open_blocking(self) -> Recovered:
        self.fence.check()
        result = self._warm_result()
        if result is None:
            result = recover(self.directory, self.fence.epoch, self.settings.duplicate_window,
                             self.settings.on_corruption)
        self._index, self._epoch = result.index, result.epoch
        writer = Writer(self.directory, result.epoch)
        # FORMAT.md section 4 step 9: never append to a file an earlier opener wrote.
        writer.start(result.next_file, result.ends)
        self._writer = writer
        try:
            if self.warm:
                # FORMAT.md section 6: a checkpoint costs O(live messages), too slow for a takeover.
                # The previous one stays valid (its replay crosses our SEAL); maintenance writes ours.
                self._dirty = True
            elif result.index.messages >= self.checkpoint_aside_at:
                # The same for a large cold open (FORMAT.md section 4 step 10): a million messages'
                # checkpoint is a quarter of the open. Maintenance writes it at once, off this path.
                self._dirty = self._checkpoint_due = True
            else:
                self._checkpoint_after_open(writer)
            fsio.sync_directory(self.directory)
            # FORMAT.md section 4 step 8: only the heads are read, through the read seam.
            index = result.index
            read = pages_of(index.orders.get, self._read_keys)
            recovered = recovered_heads(index.depths(), read, self.settings.cursor_window,
                                        index.subscriptions.values(), index.producers)
        except BaseException:
            writer.close()
            raise
        self.last_recovery = result.stats
        log.info(
            "journal: recovered %d message(s) in %d queue(s), %d of them read (the heads); replayed %d "
            "record(s) from %s (%s)",
            index.messages,
            len(index.queues),
            sum(len(head) for head in recovered.queues.values()),
            result.stats.records_replayed,
            result.stats.start,
            "warm: a follower's state" if self.warm else "cold",
        )
        return recovered

    def _checkpoint_after_open(self, writer: Writer) -> None:
        """FORMAT.md section 4 step 10, unless the disk is full: then, as after a warm open, the
        previous checkpoint stays valid and maintenance writes ours once there is room, so a
        broker killed on a full disk still starts (docs/operations.md, "Disk limits")."""
        try:
            self._checkpoint()
        except OSError as exc:
            if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise
            log.error("journal: no room for a checkpoint after recovery (%s); serving from the previous "
                      "one, maintenance retries every checkpoint_interval", exc)
            self._dirty = True
            return
        cleanup.delete(self.directory, writer, self._deletable(), cleanup.CleanupReport())

    def _warm_result(self) -> Result | None:
        follower, self._follower = self._follower, None
        if follower is None:
            return None
        result = follower.finish(self.fence.epoch)
        self.warm = result is not None
        return result

    # Writes ------------------------------------------------------------------------------

    async def write(self, ops: Sequence[Op]) -> None:
        await self.start_write(ops)

    def start_write(self, ops: Sequence[Op], source: Hashable = None) -> asyncio.Future[None]:
        # The broker's hot path: the group commit's own future, no task per message (Store.start_write).
        if self._committer is None:
            return _failed(StoreClosed("journal store is not open"))
        batch = _Encoded(ops)
        try:
            batch.record = encode_batch(batch)
        except (TypeError, ValueError) as exc:
            return _failed(StoreError(f"cannot store this batch: {exc}"))
        return self._committer.submit_nowait(batch, source)

    def _apply(self, batches: list[Sequence[Op]], sync: bool) -> None:
        """Writer thread: one append and at most one fsync for the whole group."""
        writer, index = self._open_parts()
        if writer.size >= self.settings.journal_max_file_size:
            writer.rotate()
        records = [b.record if isinstance(b, _Encoded) else encode_batch(b) for b in batches]
        data = b"".join(records)
        start = writer.append_synced(data) if sync else writer.append(data)
        # Only now, with the group on disk, does the index learn of it (a failed group leaves no trace).
        offset = start
        for ops, record in zip(batches, records, strict=True):
            index.apply(ops, Location(writer.number, offset, len(record)))
            offset += len(record)
        self._dirty = True

    def _sync(self) -> None:
        if self._writer is not None:
            self._writer.sync()

    def _open_parts(self) -> tuple[Writer, Index]:
        if self._writer is None or self._index is None:
            raise StoreClosed("journal store is not open")
        return self._writer, self._index

    # Reads (stores/base.py "Reads"; the index lookups are safe off the writer thread) -------

    def position(self, queue: str, message_id: str) -> int | None:
        self._reads.check()
        _, index = self._open_parts()
        order = index.orders.get(queue)
        return None if order is None else order.position(message_id)

    def _read_keys(self, keys: list[Key]) -> dict[Key, StoredMessage]:
        _, index = self._open_parts()
        return self._read_at(index.find(keys))

    def _read_at(self, pending: dict[Key, Location]) -> dict[Key, StoredMessage]:
        _, index = self._open_parts()
        load = functools.partial(load_messages, self.directory)
        return fetch(pending, index.find, load, layout.data_name)

    def _read_page(self, queue: str, after: int | None, limit: int) -> Page:
        _, index = self._open_parts()
        return read_page(lambda: index.orders.get(queue), queue, after, limit, self._read_at)

    # Checkpoint and cleanup (writer thread) ----------------------------------------------

    def _guard(self) -> None:
        """Before a checkpoint or a deletion: are we still the master? (FORMAT.md section 5)."""
        self.fence.check()
        writer, _ = self._open_parts()
        if layout.data_path(self.directory, writer.number + 1).exists():
            raise StoreClosed(f"{layout.data_name(writer.number + 1)} exists: another master writes here")
        self._refuse_newer_checkpoint()

    def _refuse_newer_checkpoint(self) -> None:
        newer = [e for e in layout.checkpoints(self.directory) if e > self._epoch]
        if newer:
            raise StoreClosed(f"a checkpoint of epoch {max(newer)} exists: another master writes here")

    def _checkpoint(self) -> None:
        self._write_checkpoint(self._snapshot())

    def _snapshot(self) -> ckpt.Checkpoint:
        """Writer thread: the index as of the end of the journal, once that end is durable."""
        writer, index = self._open_parts()
        self._guard()
        writer.sync()  # records before the checkpoint position must be durable first
        pos = (writer.number, writer.size)
        files: dict[int, int | None] = {**writer.ends, writer.number: None}
        self._dirty = False  # what is applied from now on makes it dirty again
        return ckpt.snapshot(index, self._epoch, pos, files)

    def _write_checkpoint(self, snapshot: ckpt.Checkpoint) -> None:
        """Encode and write `snapshot` (any thread, one at a time); older checkpoints go."""
        try:
            self.fence.check()  # still ours, and no newer master (FORMAT.md section 5), just before
            self._refuse_newer_checkpoint()
            ckpt.write(layout.checkpoint_path(self.directory, self._epoch), snapshot)
        except BaseException:
            self._dirty = True
            raise
        for epoch, path in layout.checkpoints(self.directory).items():
            if epoch < self._epoch:
                path.unlink(missing_ok=True)
        self._checkpoint_pos = snapshot.pos

    def _deletable(self) -> list[int]:
        writer, index = self._open_parts()
        assert self._checkpoint_pos is not None
        return cleanup.deletable(index, writer, self._checkpoint_pos[0])

    def _compact(self, report: cleanup.CleanupReport,
                 compact: bool = True) -> tuple[ckpt.Checkpoint, list[int]]:
        """Writer thread: move live messages out of mostly dead files; the snapshot that records
        their new locations (it syncs the MOVE records first), and the files it needs no more.

        Those files are chosen now, with the snapshot, not when they are deleted: a file whose
        last message is removed after the snapshot is still named by the checkpoint."""
        writer, index = self._open_parts()
        if compact:
            cleanup.compact(self.directory, index, writer, self.settings.journal_max_file_size, report)
        snapshot = self._snapshot()
        return snapshot, cleanup.deletable(index, writer, snapshot.pos[0])

    def _delete_unneeded(self, files: list[int], report: cleanup.CleanupReport) -> None:
        """Writer thread, once the checkpoint is written: delete the files it needs no more."""
        writer, _ = self._open_parts()
        if files:
            self._guard()
            cleanup.delete(self.directory, writer, files, report)
            fsio.sync_directory(self.directory)

    async def cleanup(self, compact: bool = True) -> cleanup.CleanupReport:
        """One cleanup pass now (it also runs every cleanup_interval seconds); without `compact`,
        only a checkpoint and the deletion of the files it needs no more (recovery step 10)."""
        report = cleanup.CleanupReport()
        async with self._maintenance:
            await self._settle_checkpoint()
            committer = self._open_committer()
            compacted = await committer.run_in_writer(functools.partial(self._compact, report, compact))
            snapshot, files = cast("tuple[ckpt.Checkpoint, list[int]]", compacted)
            await self._write_aside(snapshot)
            await committer.run_in_writer(functools.partial(self._delete_unneeded, files, report))
        return report

    def _open_committer(self) -> GroupCommitter:
        if self._committer is None or self._closed:
            raise StoreClosed("journal store is not open")
        return self._committer

    async def _write_aside(self, snapshot: object) -> None:
        """Write a checkpoint's file on a thread of its own: commits go on meanwhile."""
        assert isinstance(snapshot, ckpt.Checkpoint)
        self._writing = asyncio.ensure_future(asyncio.to_thread(self._write_checkpoint, snapshot))
        # Shielded: a cancelled caller leaves the file to be finished; the next one waits for it.
        await asyncio.shield(self._writing)

    async def reclaim(self) -> None:
        """At the usage limit (stores/usage.py): compaction and deletion now, not at the next interval."""
        await self.cleanup()

    async def checkpoint(self) -> None:
        """Write a checkpoint now (it also happens every checkpoint_interval seconds)."""
        async with self._maintenance:
            await self._settle_checkpoint()
            await self._write_aside(await self._open_committer().run_in_writer(self._snapshot))

    async def _settle_checkpoint(self) -> None:
        """Wait for a checkpoint file still being written (its caller was cancelled); its outcome
        was its caller's to see."""
        writing, self._writing = self._writing, None
        if writing is not None:
            await asyncio.wait([writing])
            if not writing.cancelled():
                writing.exception()  # retrieved: not logged as never retrieved

    async def _maintain(self) -> None:
        """Checkpoints and cleanup passes, each at its interval or later as its cost requires
        (stores/pacing.py): a pass is timed from its start to its end, waiting included."""
        loop = asyncio.get_running_loop()
        next_checkpoint = loop.time() + self.settings.checkpoint_interval
        next_cleanup = loop.time() + self.settings.cleanup_interval
        while True:
            if not self._checkpoint_due:
                await asyncio.sleep(max(0.0, min(next_checkpoint, next_cleanup) - loop.time()))
            began, due = loop.time(), self._checkpoint_due
            cleaning = not due and began >= next_cleanup
            checkpointing = due or cleaning or began >= next_checkpoint  # every pass writes one
            try:
                if due:
                    self._checkpoint_due = False
                    await self.cleanup(compact=False)  # the open's step 10, left to us
                elif cleaning:
                    await self.cleanup()
                elif checkpointing and self._dirty:
                    await self.checkpoint()
            except StoreClosed as exc:
                log.error("journal: background maintenance stops: %s", exc)
                return
            except (OSError, StoreError) as exc:
                log.warning("journal: checkpoint or cleanup failed, will retry: %s", exc)
            finished = loop.time()
            took = finished - began
            if cleaning:
                next_cleanup = pacing.next_due(finished, took, self.settings.cleanup_interval)
            if checkpointing:
                next_checkpoint = pacing.next_due(finished, took, self.settings.checkpoint_interval)
                if took > 0.5:
                    log.debug("journal: maintenance took %.2f s; next checkpoint in %.1f s", took,
                              next_checkpoint - finished)

    # Stats and close ---------------------------------------------------------------------

    async def stats(self) -> StoreStats:
        messages = self._index.messages if self._index is not None else 0
        return await asyncio.to_thread(self._disk_stats, messages)

    def _disk_stats(self, messages: int) -> StoreStats:
        sizes = [p.stat().st_size for p in layout.data_files(self.directory).values()]
        extra = sum(p.stat().st_size for p in layout.checkpoints(self.directory).values())
        return StoreStats(messages=messages, bytes=sum(sizes) + extra, files=len(sizes))

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self._reads.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        # A checkpoint or cleanup under way ends first (later ones find the store closed), and a
        # checkpoint file whose caller was cancelled is finished: ours must not overlap them.
        async with self._maintenance:
            await self._settle_checkpoint()
        if self._committer is not None:
            await self._committer.close()
        if self._writer is None:
            return
        started = time.perf_counter()
        try:
            await asyncio.to_thread(self._checkpoint)
        except StoreClosed as exc:
            log.warning("journal: no checkpoint on close: %s", exc)
        except OSError as exc:
            log.warning("journal: checkpoint on close failed (recovery will replay more): %s", exc)
        finally:
            self._writer.close()
        log.debug("journal: closed in %.3f s", time.perf_counter() - started)


def _failed(error: BaseException) -> asyncio.Future[None]:
    future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    future.set_exception(error)
    return future
