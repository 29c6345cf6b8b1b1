"""AppendLogStore: the `Store` contract over one segmented, append-only log (FORMAT.md).

Each `write(ops)` batch is one BATCH record; a group commit is one write of all its records and
one fdatasync. The in-memory `LogState` changes only after the group is on disk, so a failed
group (cut back to where it started) leaves neither bytes nor state behind. When little of the
log is still live, the writer thread compacts it: the live state is written as a snapshot into
new segments, made durable, and only then are the segments it replaces deleted.

Every `checkpoint_interval` seconds in which the log changed, the index is checkpointed
(checkpoint.py, FORMAT.md "Checkpoint") so that recovery replays only the log after it: the
writer thread syncs the segment and copies the index's columns (milliseconds for a million
messages), and a worker thread encodes and writes the file while group commits go on.
Compaction deletes the checkpoint before it deletes any segment the checkpoint describes.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import cast

from config.model import StoreSettings
from stores import fsio, pacing, quarantine
from stores.appendlog import checkpoint as ckpt
from stores.appendlog import compaction, records, segments
from stores.appendlog.follower import Follower
from stores.appendlog.records import RecordType
from stores.appendlog.recovery import Plan, plan_recovery
from stores.appendlog.segments import Segment
from stores.appendlog.state import LogState
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
from stores.bulk import gc_paused
from stores.fsio import directory_usage
from stores.groupcommit import GroupCommitter, start_committer
from stores.heads import pages_of, recovered_heads
from stores.reads import (
    GatedReads,
    Key,
    Location,
    ReadGate,
    fetch,
    load_file,
    read_page,
)

log = logging.getLogger(__name__)

COMPACTION_PAGE = 256  # messages read back at a time while a compaction snapshot is written


class _Prepared(list[Op]):
    """A caller's batch with its record already framed, so a bad op fails only its own writer."""

    def __init__(self, ops: Sequence[Op], frame: bytes) -> None:
        super().__init__(ops)
        self.frame = frame


class AppendLogStore(GatedReads, Store):
    kind = "appendlog"

    def __init__(self, directory: Path, settings: StoreSettings, fence: Fence | None = None) -> None:
        super().__init__(directory, settings, fence)
        self._state = LogState(settings.duplicate_window)
        self._active: Segment | None = None
        self._closed_sizes: dict[int, int] = {}  # every other segment file we keep -> its size
        self._closed_bytes = 0
        self._next_number = 1
        self._epoch = 0
        self._committer: GroupCommitter | None = None
        self._closed = False
        self._failed: str | None = None  # set when the files may no longer match memory
        self._compaction: asyncio.Task[None] | None = None
        self._retry_compaction_at = 0  # after a failed compaction: total bytes before trying again
        self._rescan_dead = 0  # no prefix was worth replacing at fewer dead bytes than this
        self._reads = ReadGate("appendlog store")
        self._follower: Follower | None = None
        self._segments: dict[int, int] = {}  # honoured segments -> header epochs: what a checkpoint names
        # The newest complete compaction snapshot replaced the segments before this one.
        self._snapshot_base: int | None = None
        self._dirty = False  # the state changed since the last checkpoint's snapshot
        self._maintenance: asyncio.Task[None] | None = None
        self._checkpointing = asyncio.Lock()  # one checkpoint at a time
        self._writing: asyncio.Future[None] | None = None  # a checkpoint's file being written
        # Compaction drops the checkpoint and bumps the generation under this lock; a checkpoint
        # whose snapshot is of an older generation is then never renamed into place.
        self._published = threading.Lock()
        self._generation = 0

    # -- following (docs/hot-standby.md) -----------------------------------------------------

    @classmethod
    def follower(cls, directory: Path, settings: StoreSettings, sink: FollowerSink) -> Follower:
        return Follower(directory, settings, sink)

    def follow_from(self, follower: StoreFollower) -> bool:
        """Make `open()` finish this follower's replay; it recovers cold if the follower cannot."""
        if not isinstance(follower, Follower):
            return False
        self._follower = follower
        return True

    def _warm_plan(self) -> Plan | None:
        follower, self._follower = self._follower, None
        if follower is None:
            return None
        plan = follower.finish(self.fence.epoch)
        self.warm = plan is not None
        return plan

    # -- open ---------------------------------------------------------------------------------

    async def open(self) -> Recovered:
        if self._active is not None or self._closed:
            raise StoreError("a store object is opened once; build a new one to reopen")
        recovered = await asyncio.to_thread(self._open_blocking)
        self._committer = start_committer(self, self._apply, self._sync)
        self._reads.open()
        self._maintenance = asyncio.get_running_loop().create_task(self._maintain())
        self._maybe_compact()
        return recovered

    def _open_blocking(self) -> Recovered:
        self.directory.mkdir(parents=True, exist_ok=True)
        plan = self._warm_plan()
        if plan is None:
            with gc_paused():
                plan = plan_recovery(self.directory, self.settings.duplicate_window, self.fence.epoch,
                                     self.settings.on_corruption)
        (self.directory / ckpt.TEMP_NAME).unlink(missing_ok=True)  # a checkpoint write cut short
        self._repair(plan)
        self._state = plan.state
        self._closed_sizes = dict(plan.sizes)
        self._closed_bytes = sum(plan.sizes.values())
        self._epoch = max(self.fence.epoch, plan.epoch)
        # Never append to a segment an earlier run (maybe a deposed master) wrote: start a new one
        # whose header seals every unsealed segment at the end we recovered.
        self._next_number = plan.next_number + 1
        self._active = segments.create_segment(self.directory, plan.next_number, self._epoch, plan.seal)
        self._segments = {n: epoch for n, epoch in plan.honoured.items() if n in plan.sizes}
        self._segments[self._active.number] = self._epoch
        self._snapshot_base = plan.replaced_below
        # A checkpoint is due if recovery replayed records it does not cover; after a warm open,
        # only once something is written (the previous master's checkpoint stays valid meanwhile).
        self._dirty = not self.warm and (plan.resumed is None or plan.replayed > 0)
        log.info(
            "appendlog store %s opened: %d messages in %d queues, %d segments, epoch %d (%s)",
            self.directory,
            self._state.messages,
            len(self._state.queues),
            len(self._closed_sizes) + 1,
            self._epoch,
            "warm: a follower's state" if self.warm else "cold",
        )
        state = self._state
        read = pages_of(state.orders.get, self._read_keys)  # the heads, through the read seam
        depths = {queue: len(messages) for queue, messages in state.queues.items()}
        with gc_paused():  # a full collection now would walk the whole index: not on a takeover's path
            return recovered_heads(depths, read, self.settings.cursor_window, state.subscriptions.values(),
                                   state.producers)

    def _repair(self, plan: Plan) -> None:
        for number, offset, data in plan.quarantine:  # copied before anything drops them
            try:
                quarantine.save(self.directory, segments.segment_name(number), offset, data)
            except OSError as exc:
                raise StoreError(f"{segments.where(number, offset)}: cannot copy {len(data)} damaged bytes "
                                 f"to quarantine/ before dropping them: {exc}") from None
        segments.delete_segments(self.directory, plan.discard)
        if plan.truncate is not None:
            segments.truncate_segment(self.directory, *plan.truncate)
        if plan.obsolete:
            # The snapshot we recovered from must be durable before what it replaces goes away,
            # and a checkpoint naming what it replaces must go before that.
            for number in plan.sizes:
                segments.sync_segment(self.directory, number)
            self._drop_checkpoint()
            segments.delete_segments(self.directory, plan.obsolete)
            log.info("deleted %d segments replaced by a compaction snapshot", len(plan.obsolete))

    # -- write --------------------------------------------------------------------------------

    async def write(self, ops: Sequence[Op]) -> None:
        if self._committer is None or self._closed:
            raise StoreClosed("store is not open")
        if not ops:
            return
        await self._committer.submit(_prepare(ops))
        self._maybe_compact()

    def _apply(self, batches: list[Sequence[Op]], sync: bool) -> None:
        """Writer thread: append the group's records with one write, sync once, then update memory."""
        active = self._writable()
        if active.size >= self.settings.appendlog_segment_size:
            active = self._rotate()
        start, last = active.size, active.last
        frames = [_frame_of(ops) for ops in batches]
        joined = b"".join(frames)
        active.append(joined, len(joined) - len(frames[-1]))
        if sync:
            try:
                active.sync()
            except OSError:
                active.cut(start, last)  # the error propagates: nobody in this group is acknowledged
                raise
        offset = start
        for ops, frame in zip(batches, frames, strict=True):
            self._state.apply(ops, Location(active.number, offset, len(frame)))
            offset += len(frame)
        self._dirty = True

    def _writable(self) -> Segment:
        if self._active is None:
            raise StoreClosed("store is closed")
        if self._active.damaged and not self._failed:
            self._failed = self._active.damaged
        if self._failed:
            raise StoreError(f"the log refuses writes until reopened: {self._failed}")
        return self._active

    def _rotate(self) -> Segment:
        """Start the next segment; its header seals the current one at its (synced) end."""
        old = self._writable()
        old.sync()
        number = self._next_number
        self._next_number += 1
        try:
            new = segments.create_segment(self.directory, number, self._epoch, {old.number: old.size})
        except OSError as exc:
            if (self.directory / segments.segment_name(number)).exists():
                # A header sealing `old` may be on disk: appending to `old` now would be ignored.
                self._failed = f"could not remove the half-created {segments.segment_name(number)}: {exc}"
            raise
        self._closed_sizes[old.number] = old.size
        self._closed_bytes += old.size
        old.close()
        self._active = new
        self._segments[new.number] = self._epoch
        return new

    def _sync(self) -> None:
        if self._active is not None:
            self._active.sync()

    # -- compaction ---------------------------------------------------------------------------

    def _wants_compaction(self) -> bool:
        """Cheap: integers (any thread). When the dead bytes are many and the live fraction is low;
        `_compact` then chooses which segments to replace (compaction.py)."""
        if self._active is None:
            return False
        total = self._closed_bytes + self._active.size
        live = self._state.live_bytes
        dead = total - live
        if total < self._retry_compaction_at:
            return False
        return dead >= max(self.settings.appendlog_segment_size // 2, self._rescan_dead) and (
            live < self.settings.appendlog_compact_live_fraction * total
        )

    def _prefix(self) -> int:
        """Writer thread: how many segments, oldest first, the next compaction replaces (0: none)."""
        sizes = sorted(self._closed_sizes.items()) + [(self._writable().number, self._writable().size)]
        state, settings = self._state, self.settings
        return compaction.prefix_to_replace(sizes, state.segment_live, state.fixed_bytes,
                                            settings.appendlog_segment_size // 2,
                                            settings.appendlog_compact_live_fraction, self._may_keep_from)

    def _may_keep_from(self, number: int) -> bool:
        """Whether a compaction may keep the segments from `number` on (FORMAT.md, "Compaction"):
        replay can start there, and what it would copy is the oldest of every queue."""
        inside = segments.begins_inside_snapshot(self.directory, number)
        return not inside and self._state.oldest_below(number)

    def _maybe_compact(self) -> None:
        if self._compaction is None and not self._closed and self._wants_compaction():
            self._compaction = asyncio.get_running_loop().create_task(self._run_compaction())

    async def reclaim(self) -> None:
        """At the usage limit (stores/usage.py): compact now if dead bytes are worth it, even right
        after a compaction that failed (the failure waits for more writes, which are held now)."""
        self._retry_compaction_at = 0
        self._maybe_compact()
        if self._compaction is not None:
            await asyncio.shield(self._compaction)

    async def _run_compaction(self) -> None:
        assert self._committer is not None
        try:
            await self._committer.run_in_writer(self._compact)
        except (OSError, StoreError) as exc:
            log.error("appendlog compaction failed; the log keeps its old segments: %s", exc)
            # Not again on the very next write (a full disk would fail the same way): wait for more.
            if self._active is not None:
                total = self._closed_bytes + self._active.size
                self._retry_compaction_at = total + self.settings.appendlog_segment_size // 2
        finally:
            self._compaction = None

    def _compact(self) -> None:
        """Writer thread. Crash-safe at every step: see FORMAT.md, "Compaction"."""
        if not self._wants_compaction():
            return
        count = self._prefix()
        if not count:
            total = self._closed_bytes + self._writable().size
            self._rescan_dead = total - self._state.live_bytes + self.settings.appendlog_segment_size // 16
            return
        self._drop_checkpoint()  # it names segments this deletes (FORMAT.md, "Checkpoint")
        self._dirty = True
        before = self._closed_bytes + self._writable().size
        every = sorted(self._closed_sizes) + [self._writable().number]
        replaced, kept = every[:count], every[count:]
        keep = kept[0] if kept else None
        base = self._rotate().number
        self._append_record(RecordType.SNAP_BEGIN, records.encode_snap_begin(base, keep))
        moved, chunks = self._write_snapshot(keep)
        self._append_record(RecordType.SNAP_END, records.encode_snap_end(base, chunks))
        self._writable().sync()  # earlier snapshot segments were synced when rotated away from
        self._snapshot_base = base if keep is None else keep
        # Readers must find every live message in the snapshot before its old segment goes away
        # (stores/reads.py: a read that lost the race looks again and finds it here).
        state = self._state
        for queue, message_ids, record in moved:
            for message_id in message_ids:
                state.relocate(queue, message_id, record)
        self.fence.check()  # a deposed master must not delete what the new master reads
        segments.delete_segments(self.directory, replaced)
        for number in replaced:
            self._closed_bytes -= self._closed_sizes.pop(number, 0)
            self._segments.pop(number, None)
        self._rescan_dead = 0
        after = self._closed_bytes + self._writable().size
        log.info("appendlog compacted %d segments (%d kept as they are): %d -> %d bytes",
                 len(replaced), len(kept), before, after)

    def _write_snapshot(self, keep: int | None) -> tuple[list[tuple[str, tuple[str, ...], Location]], int]:
        """The live state (with `keep`: only the messages before that segment) as chunks after
        SNAP_BEGIN; where each chunk's messages now are, and how many chunks were written."""
        chunk_bytes = max(4096, min(1024 * 1024, self.settings.appendlog_segment_size // 4))
        state = self._state
        # Queues by name, not in the state's order: a replay that rebuilt its state after a
        # snapshot that kept segments may order them otherwise, and must write the same snapshot.
        chunks = records.snapshot_chunks(
            {queue: self._live_messages(queue, keep) for queue in sorted(state.queues)},
            list(state.subscriptions.values()),
            list(state.producers),
            chunk_bytes,
        )
        count = 0
        # Where each chunk's messages now are; not the chunks, whose payloads together are the
        # whole live state (a million 1 KiB messages: a gigabyte held until the snapshot is synced).
        moved: list[tuple[str, tuple[str, ...], Location]] = []
        for chunk in chunks:
            if self._writable().size >= self.settings.appendlog_segment_size:
                self._rotate()
            record = self._append_record(chunk.type, chunk.payload)
            if chunk.message_ids:
                moved.append((chunk.queue, chunk.message_ids, record))
            count += 1
        return moved, count

    # -- checkpoints (FORMAT.md, "Checkpoint") ------------------------------------------------

    async def checkpoint(self) -> None:
        """Write a checkpoint now (it also happens every checkpoint_interval seconds when the
        log changed): the snapshot on the writer thread, the file on a thread of its own."""
        async with self._checkpointing:
            if self._committer is None or self._closed:
                raise StoreClosed("store is not open")
            snapshot = await self._committer.run_in_writer(self._snapshot)
            generation, cp = cast("tuple[int, ckpt.Checkpoint]", snapshot)
            self._writing = asyncio.ensure_future(asyncio.to_thread(self._write_checkpoint, generation, cp))
            # Shielded: a cancelled caller (close) leaves the file to be finished; close waits for it.
            await asyncio.shield(self._writing)

    def _snapshot(self) -> tuple[int, ckpt.Checkpoint]:
        """Writer thread: the state as of the end of the log, once that end is durable."""
        active = self._writable()
        self.fence.check()
        active.sync()  # every record before the checkpoint's position must be on disk first
        self._dirty = False  # what is applied from now on makes it dirty again
        pos = (active.number, active.size)
        return self._generation, ckpt.snapshot(self._state, pos, active.last, self._segments,
                                               self._snapshot_base)

    def _write_checkpoint(self, generation: int, cp: ckpt.Checkpoint) -> None:
        """Any thread: encode and write `cp`, unless compaction dropped the checkpoint since."""

        def publish(tmp: Path, path: Path) -> None:
            with self._published:
                try:
                    if generation != self._generation:
                        raise _Superseded
                    self.fence.check()  # a deposed master publishes nothing
                    os.replace(tmp, path)
                except BaseException:
                    tmp.unlink(missing_ok=True)
                    raise

        try:
            ckpt.write(self.directory / ckpt.NAME, cp, publish)
        except _Superseded:
            log.debug("appendlog: a checkpoint superseded by compaction is not kept")
        except BaseException:
            self._dirty = True
            raise

    def _drop_checkpoint(self) -> None:
        """Before segments a checkpoint may name are deleted: delete it, durably, and keep one
        being written from replacing it later."""
        with self._published:
            self._generation += 1
            path = self.directory / ckpt.NAME
            if path.exists():
                path.unlink()
                fsio.sync_directory(self.directory)

    async def _maintain(self) -> None:
        """A checkpoint every checkpoint_interval in which the log changed, or less often as its
        cost requires (stores/pacing.py)."""
        gap = self.settings.checkpoint_interval
        while True:
            await asyncio.sleep(gap)
            gap = self.settings.checkpoint_interval
            if not self._dirty or self._compaction is not None:
                continue  # nothing new, or compaction under way (it leaves the state dirty)
            began = time.monotonic()
            try:
                await self.checkpoint()
                gap = max(gap, pacing.stretched_gap(time.monotonic() - began))
            except StoreClosed as exc:
                if not self._closed:  # a deposed master; a closing store just stops
                    log.error("appendlog: checkpoints stop: %s", exc)
                return
            except (OSError, StoreError) as exc:
                log.warning("appendlog: checkpoint failed, will retry: %s", exc)

    def _live_messages(self, queue: str, keep: int | None) -> Iterator[StoredMessage]:
        """Writer thread, during compaction: a queue's live messages (before segment `keep`, if
        given) read from their records, a page at a time (memory holds one page, not the queue)."""
        if keep is not None:
            yield from self._live_below(queue, keep)
            return
        after: int | None = None
        while (page := self._read_page(queue, after, COMPACTION_PAGE)).messages:
            yield from page.messages
            after = page.next

    def _live_below(self, queue: str, keep: int) -> Iterator[StoredMessage]:
        ids = self._state.queues[queue].ids_below(keep)
        for start in range(0, len(ids), COMPACTION_PAGE):
            keys = [(queue, message_id) for message_id in ids[start : start + COMPACTION_PAGE]]
            found = self._read_keys(keys)
            for key in keys:
                message = found.get(key)
                if message is None:
                    raise StoreError(f"compaction: live message {key[1]!r} of {queue!r} not found")
                yield message

    def _append_record(self, rtype: RecordType, payload: bytes) -> Location:
        active = self._writable()
        frame = records.encode_frame(rtype, payload)
        offset = active.size
        active.append(frame)
        return Location(active.number, offset, len(frame))

    # -- reads (stores/base.py "Reads"; the state's lookups are safe off the writer thread) -----

    def position(self, queue: str, message_id: str) -> int | None:
        self._reads.check()
        order = self._state.orders.get(queue)
        return None if order is None else order.position(message_id)

    def _read_keys(self, keys: list[Key]) -> dict[Key, StoredMessage]:
        return self._read_at(self._state.find(keys))

    def _read_at(self, pending: dict[Key, Location]) -> dict[Key, StoredMessage]:
        return fetch(pending, self._state.find, self._load, segments.segment_name)

    def _load(self, number: int, wanted: list[tuple[Key, Location]]) -> dict[Key, StoredMessage]:
        path = self.directory / segments.segment_name(number)
        return load_file(path, wanted, records.record_messages)

    def _read_page(self, queue: str, after: int | None, limit: int) -> Page:
        state = self._state
        return read_page(lambda: state.orders.get(queue), queue, after, limit, self._read_at)

    # -- stats / close ------------------------------------------------------------------------

    async def stats(self) -> StoreStats:
        files, size = await asyncio.to_thread(directory_usage, self.directory)
        return StoreStats(messages=self._state.messages, bytes=size, files=files)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            await self._reads.close()
            if self._maintenance is not None:
                self._maintenance.cancel()
                await asyncio.gather(self._maintenance, return_exceptions=True)
            if self._writing is not None:  # its snapshot's file, finished before the segment closes
                await asyncio.gather(self._writing, return_exceptions=True)
            if self._compaction is not None:
                await self._compaction
            if self._committer is not None:
                await self._committer.close()
        finally:
            if self._active is not None:
                self._active.close()
                self._active = None


class _Superseded(Exception):
    """A checkpoint's snapshot is older than compaction's deletion of the checkpoint."""


def _frame_of(ops: Sequence[Op]) -> bytes:
    assert isinstance(ops, _Prepared)
    return ops.frame


def _prepare(ops: Sequence[Op]) -> _Prepared:
    try:
        frame = records.encode_frame(RecordType.BATCH, records.encode_batch(ops))
    except (TypeError, ValueError, OverflowError) as exc:
        raise StoreError(f"cannot store this batch: {exc}") from None
    return _Prepared(ops, frame)

