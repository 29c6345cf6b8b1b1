"""Hot standby: a read-only follower of an append log that another broker writes (FORMAT.md
"Following").

A slave replays the segments as they grow, into the same index (`LogState`) cold recovery builds,
with the same replay code (`recovery.Replayer`), so that on takeover the new master replays only
the last records. While following it never writes, truncates, locks or deletes anything: it opens
segments O_RDONLY, and a record that is incomplete or fails its CRC where it stops reading is "not
written yet" (retried at the next poll). Only `finish`, called by the new master once it holds the
lock and the previous master is gone, applies cold recovery's rules to the rest of the log, after
checking that what it replayed is exactly what cold recovery would replay now; anything else (or
anything it does not model) makes `finish` return None, and the store recovers cold.

Blocking; `poll` and `finish` run in a worker thread, one call at a time.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path

from config.model import StoreSettings
from stores.appendlog import records, segments
from stores.appendlog.records import BadFrame, RecordType
from stores.appendlog.recovery import Plan, Replayer, complete_plan, plan_headers
from stores.appendlog.state import LogState
from stores.base import FollowerSink, FollowInterrupted, Recovered, StoreClosed, StoreCorrupted, StoredMessage
from stores.bulk import gc_paused
from stores.framing import HEADER_SIZE, MAX_PAYLOAD, frame_size
from stores.heads import pages_of, recovered_heads
from stores.reads import Key, Location, fetch, load_file

log = logging.getLogger(__name__)

CHUNK = 4 * 1024 * 1024  # bytes per read, and about the work of one poll
SCAN_INTERVAL = 1.0  # seconds between directory listings (a segment after a gap)
RETRY_DELAY = 1.0  # seconds before a rebuild: a race with compaction resolves itself by then
DAMAGE_DELAY = 10.0  # ... and before retrying after damage only cold recovery may judge


class _NotUsable(Exception):
    """Something only cold recovery may judge: damage, or a case the follower does not model."""


class _Restart(Exception):
    """Something replayed is no longer honoured, or a segment still needed is gone: rebuild."""


class Follower:
    def __init__(self, directory: Path, settings: StoreSettings, sink: FollowerSink | None = None) -> None:
        self.directory = Path(directory)
        self.settings = settings
        self.sink = sink
        self.reason: str | None = "not built yet"  # why the state is not usable now
        self.rebuilds = 0
        self.records = 0  # records applied since the last (re)build
        self.stalled_at: tuple[int, int] | None = None  # where a record is not whole yet
        self._interrupt = threading.Event()
        self._rebuild_at = 0.0
        self._last_scan = float("-inf")
        self._fd: int | None = None
        self._building = True  # replaying into a state the sink has not been given yet
        self._pending_reset = False  # the sink must be given the state (again)
        self._start(1)

    def _start(self, number: int) -> None:
        self._close_fd()
        self.replayer = Replayer(self.directory, Plan(LogState(self.settings.duplicate_window)), {}, None,
                                 self.settings.on_corruption)
        self.number, self.offset = number, 0  # offset 0: the header is not read yet
        self.ends: dict[int, int] = {}  # segments replayed to their honoured end -> that end
        self.seals: dict[int, int] = {}  # from the headers read so far (the smallest end wins)
        self.top_epoch = 0
        self._following: int | None = None  # the segment whose header sealed the current one

    @property
    def state(self) -> LogState:
        return self.replayer.plan.state

    @property
    def ready(self) -> bool:
        return self.reason is None

    def position(self) -> str:
        return segments.where(self.number, self.offset)

    def interrupt(self) -> None:
        """Make a running `poll` return soon (at a record or segment boundary)."""
        self._interrupt.set()

    def interrupted(self) -> bool:
        return self._interrupt.is_set()

    def _check_interrupt(self) -> None:
        if self._interrupt.is_set():
            raise FollowInterrupted()

    # Polling (read-only) ---------------------------------------------------------------------

    def poll(self) -> bool:
        """Apply what was appended since the last call; True if more is waiting (call again now)."""
        self._interrupt.clear()
        if not self.directory.is_dir():
            return False  # no master has created the store yet
        try:
            if self.reason is not None and not self._building and not self._pending_reset:
                if time.monotonic() < self._rebuild_at:
                    return False
                self._rebuild()
            if self._pending_reset:
                self._reset_sink()
            if not self._building:
                return self._advance()
            with gc_paused():  # a (re)build allocates the whole index, as an open does (stores/bulk.py)
                more = self._advance()
                if not more:
                    self._building, self._pending_reset = False, True
                    self._reset_sink()  # caught up: the sink gets the heads and depths
            return more
        except FollowInterrupted:
            return False
        except (_Restart, OSError) as exc:
            self._invalidate(str(exc) or type(exc).__name__, RETRY_DELAY)
        except (_NotUsable, StoreCorrupted) as exc:
            self._invalidate(str(exc), DAMAGE_DELAY)
        return False

    def _invalidate(self, reason: str, delay: float) -> None:
        log.warning("appendlog follower: state dropped, rebuilding in %.0f s: %s", delay, reason)
        self.reason, self._building, self._pending_reset = reason, False, False
        self._rebuild_at = time.monotonic() + delay
        self._close_fd()

    def _rebuild(self) -> None:
        """Start over from the first segment, as cold recovery does (FORMAT.md "Following")."""
        numbers = segments.list_segments(self.directory)
        self._start(numbers[0] if numbers else 1)
        self.reason, self._building = "building", True
        self.records = 0

    def _reset_sink(self) -> None:
        """Give the sink the heads and depths of the state, as the store's open would."""
        if self.sink is not None:
            self.sink.reset(self._recovered())
        self._pending_reset = False
        if self.reason is not None:
            self.rebuilds += 1
            log.info("appendlog follower: following from %s with %d live message(s)", self.position(),
                     self.state.messages)
        self.reason = None
        self.replayer.track = []

    def _recovered(self) -> Recovered:
        state = self.state

        def read_keys(keys: list[Key]) -> dict[Key, StoredMessage]:
            self._check_interrupt()
            return fetch(state.find(keys), state.find, self._load, segments.segment_name)

        read = pages_of(state.orders.get, read_keys)
        depths = {queue: len(messages) for queue, messages in state.queues.items()}
        return recovered_heads(depths, read, self.settings.cursor_window, state.subscriptions.values(),
                               state.producers)

    def _load(self, number: int, wanted: list[tuple[Key, Location]]) -> dict[Key, StoredMessage]:
        return load_file(self.directory / segments.segment_name(number), wanted, records.record_messages)

    # Tailing ---------------------------------------------------------------------------------

    def _advance(self) -> bool:
        """Replay the current segment up to what is visible (or its seal), then move on."""
        budget = CHUNK
        while budget > 0:
            self._check_interrupt()
            fd = self._open_current()
            if fd is None:
                return False
            size = os.fstat(fd).st_size
            if size < self.offset:
                raise _Restart(f"{segments.where(self.number, self.offset)}: the segment shrank to {size}")
            sealed = self.seals.get(self.number)
            if sealed is None and self._find_seal():  # before reading: never past a new master's seal
                sealed = self.seals[self.number]
            limit = size if sealed is None else min(size, sealed)
            if sealed is not None and self.offset > sealed:
                raise _Restart(f"{segments.segment_name(self.number)} was sealed at {sealed}, before what "
                               "was replayed")
            if self.offset < limit:
                consumed, stalled = self._read_records(fd, limit, budget)
                budget -= consumed
                if stalled:
                    if sealed is not None and sealed <= size:
                        raise _NotUsable(f"{self.position()}: a bad record before the sealed end {sealed}")
                    return False
                continue
            if sealed is None or self.offset < sealed:
                return False  # at the visible end: not sealed yet, or not all of it visible yet
            self._next_segment()
        return True

    def _open_current(self) -> int | None:
        if self._fd is not None:
            return self._fd
        path = self.directory / segments.segment_name(self.number)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            if self.ends or self.offset:
                name = segments.segment_name(self.number)
                raise _Restart(f"{name} was deleted before it was read") from None
            numbers = segments.list_segments(self.directory)
            if numbers and numbers[0] > self.number:
                self._start(numbers[0])  # nothing replayed yet: begin at the first segment there is
                self.replayer.track = None if self._building else []
                return self._open_current()
            return None
        try:
            found = _read_header(fd)
        except BaseException:
            os.close(fd)
            raise
        if found is None:
            os.close(fd)
            return None  # being created: its header is not written yet
        header, end = found
        if header.number != self.number:
            os.close(fd)
            raise _NotUsable(f"{segments.where(self.number, 0)}: the header names segment {header.number}")
        if header.epoch < self.top_epoch:
            os.close(fd)
            raise _NotUsable(f"{segments.segment_name(self.number)} was written under epoch {header.epoch} "
                             f"after epoch {self.top_epoch} had begun")
        self.top_epoch = header.epoch
        self._fd, self.offset = fd, end
        self._use_seals(header.sealed)
        return fd

    def _use_seals(self, sealed: dict[int, int]) -> None:
        for number, end in sealed.items():
            if number >= self.number:
                continue
            self.seals[number] = min(end, self.seals.get(number, end))
            done = self.ends.get(number)
            if done is not None and done > self.seals[number]:
                name = segments.segment_name(number)
                raise _Restart(f"{name} was sealed at {end}, before what was replayed")

    def _read_records(self, fd: int, limit: int, budget: int) -> tuple[int, bool]:
        """Apply whole, intact records in [offset, limit): (bytes consumed, stalled on a bad one)."""
        consumed = 0
        while self.offset < limit and consumed < budget:
            base = self.offset
            buf = os.pread(fd, min(limit - base, CHUNK), base)
            size = frame_size(buf)
            if size is not None and len(buf) < size <= min(limit - base, HEADER_SIZE + MAX_PAYLOAD):
                buf = os.pread(fd, size, base)  # one record longer than CHUNK
            pos = 0
            while pos < len(buf):
                step = self.replayer.record(self.number, buf, pos, len(buf), base)
                if isinstance(step, BadFrame):
                    announced = frame_size(buf, pos) or HEADER_SIZE
                    if pos > 0 and pos + announced > len(buf) and base + pos + announced <= limit:
                        break  # cut by our read, not by the visible end: read again from its start
                    self._stall(base + pos, step.reason)
                    self.offset = base + pos
                    return consumed, True
                consumed += step - pos
                pos = step
                self.offset = base + pos
                self.records += 1
                self._report()
            self.offset = base + pos
        self.stalled_at = None
        return consumed, False

    def _stall(self, offset: int, problem: str) -> None:
        here = (self.number, offset)
        if self.stalled_at != here:
            log.debug("appendlog follower: %s not readable yet: %s", segments.where(*here), problem)
        self.stalled_at = here

    def _report(self) -> None:
        """After each record: its effective changes to the sink, or the whole state after a
        snapshot that does not hold what the sink was told (it always should)."""
        replayer = self.replayer
        superseded, replayer.superseded = replayer.superseded, None
        if superseded is not None and not self._building and not superseded.same_content(self.state):
            log.warning("appendlog follower: a compaction snapshot differs from the replayed state; "
                        "giving the standby the snapshot's")
            self._pending_reset = True
            replayer.track = None
            self._reset_sink()
            return
        changes = replayer.track
        if changes and self.sink is not None:
            replayer.track = []
            self.sink.changed(changes)

    def _find_seal(self) -> bool:
        """At the visible end of an unsealed segment: has the next one's header sealed it?"""
        following = self._next_existing()
        if following is None:
            return False
        path = self.directory / segments.segment_name(following)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return False  # deleted meanwhile: the next scan says what is there now
        try:
            found = _read_header(fd)
        finally:
            os.close(fd)
        if found is None:
            return False  # being created
        header = found[0]
        name, ours = segments.segment_name(following), segments.segment_name(self.number)
        if self.number not in header.sealed or header.number != following:
            raise _Restart(f"{name} does not seal {ours} (segments between them were deleted unread)")
        end = min(header.sealed[self.number], self.seals.get(self.number, header.sealed[self.number]))
        if end < self.offset:
            raise _Restart(f"{name} seals {ours} at {end}, before what was replayed")
        self.seals[self.number] = end
        self._following = following
        return True

    def _next_existing(self) -> int | None:
        if (self.directory / segments.segment_name(self.number + 1)).exists():
            return self.number + 1
        if time.monotonic() - self._last_scan < SCAN_INTERVAL:
            return None
        self._last_scan = time.monotonic()  # a gap: a discarded segment, or deleted ones
        later = [n for n in segments.list_segments(self.directory) if n > self.number]
        return later[0] if later else None

    def _next_segment(self) -> None:
        self.ends[self.number] = self.offset
        following, self._following = self._following, None
        assert following is not None, "a segment's seal comes from the header of the one after it"
        self._close_fd()
        self.number, self.offset = following, 0
        self.stalled_at = None

    # Takeover --------------------------------------------------------------------------------

    def finish(self, epoch: int) -> Plan | None:
        """The new master's final catch-up: the `Plan` cold recovery would make now, or None."""
        self._interrupt.clear()
        try:
            with gc_paused():
                return self._finish(epoch)
        except (_NotUsable, _Restart, OSError, StoreCorrupted, StoreClosed) as exc:
            log.warning("appendlog follower: state not usable, cold recovery instead: %s", exc)
            self.reason = str(exc)
            return None
        finally:
            self.close()

    def _finish(self, epoch: int) -> Plan:
        if self.reason is not None or self._building:
            raise _NotUsable(f"not caught up ({self.reason})")
        if self._pending_reset:
            self._reset_sink()
        replayer, plan = self.replayer, self.replayer.plan
        plan.epoch = 0
        numbers, honoured, seals = plan_headers(self.directory, plan, epoch)
        present = set(numbers)
        replayed = [*self.ends, self.number]
        mine = [n for n in replayed if n in present]
        if honoured[: len(mine)] != mine or any(n < max(replayed) for n in honoured[len(mine):]):
            raise _NotUsable(f"the honoured segments {honoured[:8]} are not the ones replayed {mine[:8]}")
        sizes = {n: (self.directory / segments.segment_name(n)).stat().st_size for n in mine}
        for number in mine[:-1] if self.number in present else mine:
            limit = seals.get(number, sizes[number])
            if limit > sizes[number] or self.ends[number] != limit:
                raise _NotUsable(f"{segments.segment_name(number)} was replayed to {self.ends[number]}, "
                                 f"cold recovery would replay it to {limit}")
            plan.sizes[number] = sizes[number]
            if number not in seals:
                plan.seal[number] = limit
        replayer.seals, replayer.last = seals, (honoured[-1] if honoured else None)
        # Damage (not a torn tail) refuses here even under "quarantine": cold recovery then judges
        # it with every byte in view, as the follower, which stalled before it, never has.
        replayer.on_corruption = "refuse"
        if self.number in present:
            self._finish_current(sizes[self.number], seals.get(self.number))
        for number in honoured[len(mine):]:
            replayer.segment(number)
        replayer.end_of_log()
        self._report()
        gone = [n for n in self.ends if n not in present]
        if self.number not in present and self.offset:
            gone.append(self.number)
        if gone and (plan.replaced_below is None or max(gone) >= plan.replaced_below):
            raise _NotUsable(f"{segments.segment_name(gone[-1])} was replayed but is gone, and no snapshot "
                             "replaces it")
        complete_plan(self.directory, plan, numbers)
        log.info("appendlog follower: caught up to the end at %s (%d record(s) since the last build)",
                 self.position(), self.records)
        return plan

    def _finish_current(self, size: int, sealed: int | None) -> None:
        """Replay the rest of the current segment as cold recovery would, torn tail and all."""
        plan = self.replayer.plan
        limit = size if sealed is None else sealed
        if limit > size or self.offset > limit or self._fd is None and self.offset:
            raise _NotUsable(f"{self.position()}: cold recovery replays the segment to {limit} of {size}")
        if self.offset == 0:  # its header was never read (being created when we last looked)
            if self._open_current() is None:
                raise _NotUsable(f"{segments.where(self.number, 0)}: no header")
        assert self._fd is not None
        data = os.pread(self._fd, limit - self.offset, self.offset) if limit > self.offset else b""
        if len(data) != limit - self.offset:
            raise _NotUsable(f"{self.position()}: short read")
        end = self.replayer.replay(self.number, data, self.offset, 0, len(data), sealed is not None)
        self.offset = end
        plan.sizes[self.number] = size if end == limit else end
        if sealed is None:
            plan.seal[self.number] = end

    def _close_fd(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def close(self) -> None:
        self._close_fd()


def _read_header(fd: int) -> tuple[records.SegmentHeader, int] | None:
    """The segment header through `fd` and where it ends, or None while it is not (wholly) written."""
    head = os.pread(fd, HEADER_SIZE, 0)
    size = frame_size(head)
    if size is None or size > HEADER_SIZE + MAX_PAYLOAD:
        return None
    frame = records.decode_frame(os.pread(fd, size, 0), 0)
    if isinstance(frame, BadFrame):
        return None
    if frame.type is not RecordType.SEGMENT:
        raise _NotUsable(f"first record is {RecordType(frame.type).name}")
    return records.decode_segment_header(frame.payload, "segment header"), frame.end
