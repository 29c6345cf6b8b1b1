"""Hot standby: a read-only follower of a journal that another broker writes (FORMAT.md section 6).

A slave keeps the live state a cold recovery would produce, so that on takeover the new master
replays only the last few records. While following, the follower never writes, truncates, locks
or deletes anything: it opens files O_RDONLY, and a record that is incomplete or fails its CRC
where it stops reading is "not written yet" (retried at the next poll). Only `finish`, called by
the new master once it holds the lock and the previous master is gone, applies cold recovery's
torn-tail rule (FORMAT.md section 4 step 7).

When the files say that something it applied is no longer honoured (a SEAL of a new epoch ends
a file before what it read; a file it still needed was deleted), it rebuilds from the newest
checkpoint. Anything it does not model makes `finish` return None: the store then recovers
cold, which stays the authority.

Blocking; `poll` and `finish` run in a worker thread, one call at a time.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path

from config.model import StoreSettings
from stores.base import FollowerSink, FollowInterrupted, StoreCorrupted
from stores.bulk import gc_paused
from stores.framing import HEADER, HEADER_SIZE, MAX_PAYLOAD, frame_size
from stores.journal import checkpoint as ckpt
from stores.journal import layout
from stores.journal.followstate import LiveState, checkpoint_header
from stores.journal.index import Index, Location
from stores.journal.layout import data_name
from stores.journal.reader import first_record_bytes
from stores.journal.records import (
    BATCH,
    SEAL,
    RecordError,
    Seal,
    decode_batch,
    decode_seal,
    parse_record,
    valid_record_after,
)
from stores.journal.recovery import RecoveryStats, Result, cut_torn_tail

log = logging.getLogger(__name__)

CHUNK = 4 * 1024 * 1024  # bytes per read, and about the work of one poll
SCAN_INTERVAL = 1.0  # seconds between directory listings (a gap after our file, a new checkpoint)
RETRY_DELAY = 1.0  # seconds before a rebuild: a race with cleanup resolves itself by then
DAMAGE_DELAY = 10.0  # ... and before retrying after damage only cold recovery may judge
DEFAULT_CURSOR_WINDOW = StoreSettings.model_fields["cursor_window"].default


Interrupted = FollowInterrupted  # the contract's name for it, under the one this module uses


class _NotUsable(Exception):
    """Something only cold recovery may judge: damage, or a case the follower does not model."""


class _Restart(Exception):
    """Something applied is no longer honoured: rebuild from the newest checkpoint."""


class Follower:
    def __init__(self, directory: Path, duplicate_window: int, sink: FollowerSink | None = None,
                 cursor_window: int = DEFAULT_CURSOR_WINDOW) -> None:
        self.directory = Path(directory)
        self.window = duplicate_window
        self.cursor_window = cursor_window  # bytes of each queue's head handed to the sink
        self.sink = sink
        self.live: LiveState | None = None  # None: not built (or being rebuilt)
        self.records = 0  # records applied since the last (re)build
        self.rebuilds = 0
        self.torn_bytes = 0
        self.reason: str | None = "not built yet"  # why the state is not usable now
        self._rebuild_at = 0.0  # monotonic time of the next rebuild attempt
        self._last_scan = float("-inf")
        self._interrupt = threading.Event()
        self._fd: int | None = None
        self._checkpoint_seen: tuple[int, ...] | None = None
        self._reset_position((1, 0), {}, 0)

    def _reset_position(self, start: tuple[int, int], ends: dict[int, int | None], epoch: int) -> None:
        self._close_fd()
        self.file, self.offset = start
        self.ends = ends  # data file → honoured end; None = not known yet (an open file)
        self.applied: dict[int, int] = {start[0]: start[1]}  # how far records were applied, per file
        self.seal_read: int | None = None  # the next file, whose SEAL fixed our file's end
        self.top_epoch = 0  # highest SEAL epoch read (FORMAT.md section 4 step 5)
        self.seen_epoch = epoch
        self.stalled_at: tuple[int, int] | None = None

    @property
    def ready(self) -> bool:
        return self.reason is None

    def position(self) -> str:
        return f"{data_name(self.file)}@{self.offset}"

    # Polling (read-only) -------------------------------------------------------------------

    def interrupt(self) -> None:
        """Make a running `poll` return soon (at a record or file boundary)."""
        self._interrupt.set()

    def interrupted(self) -> bool:
        return self._interrupt.is_set()

    def poll(self) -> bool:
        """Apply what was appended since the last call; True if more is waiting (call again now)."""
        self._interrupt.clear()
        if not self.directory.is_dir():
            return False  # no master has created the store yet
        try:
            if self.reason is not None:
                if time.monotonic() < self._rebuild_at:
                    return False
                self._rebuild()
                return True
            if time.monotonic() - self._last_scan >= SCAN_INTERVAL:
                self._scan()
            return self._advance(final=False)
        except Interrupted:
            return False
        except (_Restart, OSError, StoreCorrupted, ckpt.CheckpointError) as exc:
            # Most likely a race with the master's cleanup or checkpoint: start over a bit later.
            self._invalidate(str(exc) or type(exc).__name__, RETRY_DELAY)
        except _NotUsable as exc:
            self._invalidate(str(exc), DAMAGE_DELAY)
        return False

    def _invalidate(self, reason: str, delay: float) -> None:
        log.warning("journal follower: state dropped, rebuilding in %.0f s: %s", delay, reason)
        self.reason, self.live = reason, None
        self._rebuild_at = time.monotonic() + delay
        self._close_fd()

    def _rebuild(self) -> None:
        """Cold recovery steps 2, 3 and 8, read-only; `_advance` then replays the tail.

        Only the index is kept: the sink gets the heads, read now from the files, and the depths."""
        self.reason, self.live = "rebuilding", None
        self._rebuild_at = time.monotonic() + RETRY_DELAY
        files = layout.data_files(self.directory)
        found = layout.checkpoints(self.directory)
        live = LiveState(Index(self.window))
        if not found:
            if files and 1 not in files:
                raise _NotUsable(f"no checkpoint, and {data_name(1)} is gone")
            self._reset_position((min(files, default=1), 0), dict.fromkeys(files), 0)
        else:
            epoch, path = max(found.items())
            with gc_paused(), ckpt.reading(path) as cp:
                live.load(cp)
            self._checkpoint_seen = _signature(path)
            ends = {n: (0 if n < cp.pos[0] and n not in cp.files else cp.files.get(n)) for n in files}
            self._reset_position(cp.pos, ends, epoch)
        if self.sink is not None:
            recovered = live.recovered(self.directory, self.cursor_window, self._check_interrupt)
            self.sink.reset(recovered)  # may raise Interrupted
        self.live, self.reason = live, None
        self.records = 0
        self.rebuilds += 1
        log.info("journal follower: following from %s@%d with %d live message(s)",
                 data_name(self.file), self.offset, live.index.messages)

    def _check_interrupt(self) -> None:
        if self._interrupt.is_set():
            raise Interrupted()

    def _scan(self) -> None:
        """Now and then: a gap after our file means a file we still needed was deleted."""
        self._last_scan = time.monotonic()
        files = layout.data_files(self.directory)
        if self.file + 1 not in files and any(n > self.file for n in files):
            raise _Restart(f"{data_name(self.file + 1)} was deleted before it was read")
        found = layout.checkpoints(self.directory)
        if found:
            self._verify_checkpoint(*max(found.items()), files)

    def _verify_checkpoint(self, epoch: int, path: Path, files: dict[int, Path]) -> None:
        """Cold recovery starts from the newest checkpoint: does it disown a file we applied?"""
        signature = _signature(path)
        if signature == self._checkpoint_seen:
            return
        header = checkpoint_header(path)  # a damaged checkpoint: CheckpointError, as cold
        void = [n for n in files if n < header.pos[0] and n not in header.files]
        if any(n in self.applied for n in void):
            raise _Restart(f"checkpoint-{epoch} disowns a data file that was applied")
        self._checkpoint_seen = signature

    # Tailing ----------------------------------------------------------------------------

    def _advance(self, final: bool) -> bool:
        """Read the current file up to what is visible; move on once its end is sealed."""
        budget = CHUNK
        while budget > 0:
            self._check_interrupt()
            fd = self._open_current(final)
            if fd is None:
                return False
            size = os.fstat(fd).st_size
            end = self.ends.get(self.file)
            stop = size if end is None else min(size, end)
            consumed, blocked = self._read_records(fd, stop, final, last=end is None, budget=budget)
            budget -= consumed
            if blocked:
                return False
            if self.offset < stop:
                continue  # the budget ran out inside the file
            if end is not None and self.offset >= end:
                self._next_file(final)
            elif end is not None:
                if final:
                    raise _NotUsable(f"{data_name(self.file)} ends before its sealed end {end}")
                return False
            elif not self._seal_next(final):
                return False
        return True

    def _open_current(self, final: bool) -> int | None:
        if self._fd is None:
            try:
                self._fd = os.open(layout.data_path(self.directory, self.file), os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                if self.offset > 0 or any(n > self.file for n in layout.data_files(self.directory)):
                    raise _Restart(f"{data_name(self.file)} was deleted before it was read") from None
                return None  # not created yet
        return self._fd

    def _read_records(self, fd: int, stop: int, final: bool, last: bool, budget: int) -> tuple[int, bool]:
        """Apply whole, valid records in [offset, stop): (bytes consumed, blocked on a bad record)."""
        consumed = 0
        while self.offset < stop and consumed < budget:
            buf = os.pread(fd, min(stop - self.offset, CHUNK), self.offset)
            size = frame_size(buf)
            if size is not None and len(buf) < size <= min(stop - self.offset, HEADER_SIZE + MAX_PAYLOAD):
                buf = os.pread(fd, size, self.offset)  # one record longer than CHUNK
            pos = 0
            while pos < len(buf):
                try:
                    record = parse_record(buf, pos)
                except RecordError as exc:
                    size = frame_size(buf, pos) or HEADER_SIZE
                    if pos > 0 and len(buf) - pos < size and self.offset + len(buf) - pos < stop:
                        break  # cut by our read, not by the file's end: read again from its start
                    self._stall(fd, stop, final, last, exc.problem)
                    return consumed, True
                size = record.size
                self._apply(self.offset, record.type, record.payload, size)
                pos += size
                consumed += size
                self.offset += size
                self.applied[self.file] = self.offset
        self.stalled_at = None
        return consumed, False

    def _stall(self, fd: int, stop: int, final: bool, last: bool, problem: str) -> None:
        """A record that is not whole: not written yet while following; at takeover, cold's rule."""
        here = (self.file, self.offset)
        if not final:
            if self.stalled_at != here:
                log.debug("journal follower: %s@%d not readable yet: %s", data_name(self.file), self.offset,
                          problem)
            self.stalled_at = here
            return
        tail = os.pread(fd, stop - self.offset, self.offset)
        if not (last and self._is_last_file() and valid_record_after(tail, 0) is None):
            raise _NotUsable(f"{data_name(self.file)}@{self.offset}: {problem}")
        cut_torn_tail(self.directory, self.file, self.offset, tail, problem)
        self.torn_bytes += stop - self.offset

    def _apply(self, offset: int, rtype: int, payload: bytes, size: int) -> None:
        where = f"{data_name(self.file)}@{offset}"
        if (rtype == SEAL) != (offset == 0):
            raise _NotUsable(f"{where}: a file starts with its SEAL, and only there is one")
        if rtype == SEAL:
            try:
                seal = decode_seal(payload)
            except ValueError as exc:
                raise _NotUsable(f"{where}: bad SEAL: {exc}") from None
            if seal.file != self.file:
                raise _NotUsable(f"{where}: the SEAL names {data_name(seal.file)}")
            self._use_seal(seal, self.file)
            return
        assert rtype == BATCH and self.live is not None
        try:
            ops = decode_batch(payload)
        except ValueError as exc:
            raise _NotUsable(f"{where}: undecodable BATCH: {exc}") from None
        changes = self.live.apply(ops, Location(self.file, offset, size))
        self.records += 1
        if self.sink is not None and changes:
            self.sink.changed(changes)

    def _seal_next(self, final: bool) -> bool:
        """At the visible end of an open file: has the next file's SEAL fixed where this one ends?"""
        following = self._following_file(final)
        if following is None:
            return False
        try:
            record = parse_record(first_record_bytes(layout.data_path(self.directory, following)), 0)
            seal = decode_seal(record.payload) if record.type == SEAL else None
        except FileNotFoundError:
            raise _Restart(f"{data_name(following)} was deleted before it was read") from None
        except (RecordError, ValueError) as exc:
            problem = exc.problem if isinstance(exc, RecordError) else str(exc)
            if final and self._cut_torn_file(following, problem):
                return False  # the writer died inside the new file's first record: it never began
            if final:
                raise _NotUsable(f"{data_name(following)}@0: not a valid SEAL: {exc}") from None
            return False  # not written yet
        if seal is None or seal.file != following:
            raise _NotUsable(f"{data_name(following)}@0: first record is not this file's SEAL")
        self._use_seal(seal, following)
        self.seal_read = following
        return True

    def _cut_torn_file(self, n: int, problem: str) -> bool:
        """At takeover: if file `n` is the last non-empty file and holds no whole record, it is a
        torn tail, which cold recovery cuts (FORMAT.md section 4): cut it to empty the same way."""
        files = layout.data_files(self.directory)
        if any(m > n and p.stat().st_size > 0 for m, p in files.items()):
            return False
        data = files[n].read_bytes()
        if valid_record_after(data, 0) is not None:
            return False
        cut_torn_tail(self.directory, n, 0, data, problem)
        self.torn_bytes += len(data)
        return True

    def _following_file(self, final: bool) -> int | None:
        if not final:
            following = self.file + 1
            return following if layout.data_path(self.directory, following).exists() else None
        # At takeover nothing is being written: skip files a crash left empty (step 4).
        later = {n: p for n, p in layout.data_files(self.directory).items() if n > self.file}
        for n, path in later.items():
            if path.stat().st_size > 0:
                if any(m not in later for m in range(self.file + 1, n)):
                    raise _NotUsable(f"a gap before {data_name(n)}")
                return n
        return None

    def _use_seal(self, seal: Seal, n: int) -> None:
        """FORMAT.md section 4 step 5, applied as SEALs appear."""
        if seal.epoch < self.top_epoch:
            raise _NotUsable(f"{data_name(n)}: epoch {seal.epoch} wrote it after epoch {self.top_epoch}")
        self.top_epoch = seal.epoch
        self.seen_epoch = max(self.seen_epoch, seal.epoch)
        for m in list(self.ends):
            if m >= n:
                continue
            if m not in seal.ends and m != self.file and not layout.data_path(self.directory, m).exists():
                # Cleanup deleted it before this SEAL was written (FORMAT.md section 5 step 3), and
                # every earlier SEAL, which did list it, was applied: this one says nothing about it,
                # and cold recovery, which reads only the files that exist, never sees it.
                del self.ends[m]
                self.applied.pop(m, None)
                continue
            limit = seal.ends.get(m, 0)
            if self.applied.get(m, 0) > limit:
                raise _Restart(f"epoch {seal.epoch} sealed {data_name(m)} at {limit}, before what was read")
            end = self.ends[m]
            self.ends[m] = limit if end is None else min(end, limit)
        self.ends.setdefault(n, None)

    def _next_file(self, final: bool) -> None:
        self._close_fd()
        self.file = self.seal_read if self.seal_read is not None else self.file + 1
        self.offset = 0
        if self.seal_read == self.file:
            # Its SEAL was applied when it fixed the previous file's end: skip it.
            head = first_record_bytes(layout.data_path(self.directory, self.file))
            self.offset = HEADER_SIZE + HEADER.unpack_from(head)[1]
        self.seal_read = None
        self.applied[self.file] = self.offset

    def _is_last_file(self) -> bool:
        later = [p for n, p in layout.data_files(self.directory).items() if n > self.file]
        return all(p.stat().st_size == 0 for p in later)

    # Takeover ---------------------------------------------------------------------------

    def finish(self, epoch: int) -> Result | None:
        """The new master's final catch-up (to the true end, cutting a torn tail), or None: go cold."""
        self._interrupt.clear()
        try:
            return self._finish(epoch)
        except (_NotUsable, _Restart, OSError, StoreCorrupted, ckpt.CheckpointError) as exc:
            log.warning("journal follower: state not usable, cold recovery instead: %s", exc)
            self.reason, self.live = str(exc), None
            return None
        finally:
            self.close()

    def _finish(self, epoch: int) -> Result:
        if self.reason is not None or self.live is None:
            raise _NotUsable(f"not caught up ({self.reason})")
        for leftover in layout.leftovers(self.directory):
            leftover.unlink(missing_ok=True)  # cold recovery step 1
        files = layout.data_files(self.directory)
        found = layout.checkpoints(self.directory)
        if found:
            newest = max(found)
            if epoch > 0 and newest > epoch:
                raise _NotUsable(f"checkpoint-{newest} is newer than our epoch {epoch}")
            self._verify_checkpoint(newest, found[newest], files)
        missing = [n for n in self.live.index.live if n not in files]
        if missing:
            raise _NotUsable(f"{data_name(missing[0])} holds live messages but is missing")
        before, self.torn_bytes, self.stalled_at = self.records, 0, None
        while self._advance(final=True):
            pass
        if not self._is_last_file():
            raise _NotUsable(f"stopped at {data_name(self.file)}@{self.offset}")
        return self._result(epoch, before)

    def _result(self, epoch: int, before: int) -> Result:
        assert self.live is not None
        files = layout.data_files(self.directory)
        sizes = {n: p.stat().st_size for n, p in files.items()}
        ends = {n: (sizes[n] if (end := self.ends.get(n)) is None else end) for n in files}
        self.seen_epoch = max([self.seen_epoch, *layout.checkpoints(self.directory)])
        stats = RecoveryStats(start=(self.file, self.offset), records_replayed=self.records - before,
                              torn_bytes=self.torn_bytes)
        return Result(
            index=self.live.index,
            ends=ends,
            epoch=epoch if epoch > 0 else self.seen_epoch,
            next_file=max(files, default=0) + 1,
            stats=stats,
        )

    def _close_fd(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def close(self) -> None:
        self._close_fd()


def _signature(path: Path) -> tuple[int, ...]:
    st = path.stat()
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
