"""Recovery of the append log: read every segment, decide what survives (FORMAT.md, "Recovery").

`plan_recovery` only reads; it returns the replayed state plus the repairs the store then makes
(cut a torn tail, delete a torn new segment, delete segments a complete snapshot replaced) and
the seals the new segment must carry. Torn tails are dropped with a WARNING naming file, offset
and bytes; damage anywhere else raises StoreCorrupted naming `log-N.seg@offset`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from stores import framing
from stores.appendlog import checkpoint as ckpt
from stores.appendlog import records, segments
from stores.appendlog.records import BadFrame, Frame, RecordType
from stores.appendlog.state import LogState
from stores.base import Op, StoreClosed, StoreCorrupted
from stores.framing import Fault
from stores.reads import Location

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Plan:
    state: LogState
    epoch: int = 0  # highest epoch any honoured segment was written under
    next_number: int = 1
    sizes: dict[int, int] = field(default_factory=dict)  # segments kept -> bytes on disk after repairs
    seal: dict[int, int] = field(default_factory=dict)  # unsealed segments -> end the new header seals
    truncate: tuple[int, int] | None = None  # (segment, size): cut the torn tail there
    discard: list[int] = field(default_factory=list)  # last segment whose own header is torn
    obsolete: list[int] = field(default_factory=list)  # replaced by the newest complete snapshot
    replaced_below: int | None = None  # the newest complete snapshot replaced the segments before it
    # Damaged ranges to copy aside before any repair drops them: (segment, offset, bytes).
    quarantine: list[tuple[int, int, bytes]] = field(default_factory=list)
    honoured: dict[int, int] = field(default_factory=dict)  # honoured segments -> header epochs, in order
    resumed: tuple[int, int] | None = None  # the checkpoint's position replay started at, if one was used
    replayed: int = 0  # records replayed (after the checkpoint, if one was used)


def plan_recovery(directory: Path, duplicate_window: int, fence_epoch: int,
                  on_corruption: str = "refuse") -> Plan:
    plan = Plan(LogState(duplicate_window))
    numbers, honoured, seals = plan_headers(directory, plan, fence_epoch)
    replayer = Replayer(directory, plan, seals, honoured[-1] if honoured else None, on_corruption)
    resume = _resume(directory, plan, seals)
    if resume is None:
        replayer.run(honoured)
    else:
        number, offset = resume
        replayer.segment(number, offset)
        replayer.run([n for n in honoured if n > number])
    plan.replayed = replayer.records
    complete_plan(directory, plan, numbers)
    return plan


def _resume(directory: Path, plan: Plan, seals: dict[int, int]) -> tuple[int, int] | None:
    """Load the checkpoint into `plan.state` if it describes a prefix of the log as recovery reads
    it (FORMAT.md, "Checkpoint"); where replay then starts. None: replay everything (a damaged or
    stale checkpoint is named at WARNING; the log is the authority)."""
    path = directory / ckpt.NAME
    try:
        cp = ckpt.read(path)
    except (OSError, ckpt.CheckpointError) as exc:
        log.warning("%s: unreadable (%s); ignored, replaying the whole log", path, exc)
        return None
    if cp is None:
        return None

    def end(number: int) -> int:
        sealed = seals.get(number)
        return sealed if sealed is not None else (directory / segments.segment_name(number)).stat().st_size

    def head(number: int, offset: int) -> bytes:
        return segments.read_at(directory, number, offset, records.HEADER_SIZE)

    why = ckpt.usable(cp, plan.honoured, seals, end, head, plan.state.window)
    if why is not None:
        log.warning("%s: stale, %s; ignored, replaying the whole log", path, why)
        return None
    plan.state.restore(cp.prefixes, cp.queues, cp.subscriptions, cp.producers)
    plan.resumed, plan.replaced_below = cp.pos, cp.snapshot_base
    log.info("%s: %d messages as of %s; replaying the log after it", path, plan.state.messages,
             segments.where(*cp.pos))
    return cp.pos


def plan_headers(directory: Path, plan: Plan, fence_epoch: int
                 ) -> tuple[list[int], list[int], dict[int, int]]:
    """Steps 1-4: the segments, the honoured ones in order, and their seals; fills `plan`'s epoch,
    next number, and a discarded last segment. Shared by cold recovery and a follower's finish."""
    numbers = segments.list_segments(directory)
    plan.next_number = (numbers[-1] + 1) if numbers else 1
    headers = _read_headers(directory, numbers, plan)
    honoured = _honoured(headers, plan)
    plan.honoured = {number: headers[number].epoch for number in honoured}
    if fence_epoch > 0 and plan.epoch > fence_epoch:
        raise StoreClosed(
            f"{directory}: the log was written under epoch {plan.epoch}, newer than ours ({fence_epoch}); "
            "another master has taken over"
        )
    seals: dict[int, int] = {}
    for number in honoured:
        for sealed, end in headers[number].sealed.items():
            if sealed < number:
                seals[sealed] = min(end, seals.get(sealed, end))
    return numbers, honoured, seals


def complete_plan(directory: Path, plan: Plan, numbers: list[int]) -> None:
    """After replay: the sizes of segments replay did not read, and what a snapshot made obsolete."""
    for number in numbers:
        if number not in plan.discard and number not in plan.sizes:
            plan.sizes[number] = (directory / segments.segment_name(number)).stat().st_size  # stale
    if plan.replaced_below is not None:
        plan.obsolete = [n for n in plan.sizes if n < plan.replaced_below]
        for number in plan.obsolete:
            del plan.sizes[number]
            plan.seal.pop(number, None)


def _read_headers(directory: Path, numbers: list[int], plan: Plan) -> dict[int, records.SegmentHeader]:
    headers = {}
    for number in numbers:
        frame = segments.read_first_frame(directory, number)
        if isinstance(frame, BadFrame) or frame.type is not RecordType.SEGMENT:
            if isinstance(frame, BadFrame):
                reason = frame.reason
            else:
                reason = f"first record is {RecordType(frame.type).name}"
            if number == numbers[-1]:
                # Created but its header never reached the disk: a crash while rotating.
                log.warning(
                    "%s: torn segment header (%s); discarding the segment (copied to quarantine/)",
                    segments.where(number, 0), reason,
                )
                plan.discard.append(number)
                plan.quarantine.append((number, 0, segments.read_segment(directory, number)))
                continue
            raise StoreCorrupted(segments.where(number, 0), f"unreadable segment header: {reason}")
        header = records.decode_segment_header(frame.payload, segments.where(number, 0))
        if header.number != number:
            raise StoreCorrupted(segments.where(number, 0), f"header names segment {header.number}")
        headers[number] = header
    return headers


def _honoured(headers: dict[int, records.SegmentHeader], plan: Plan) -> list[int]:
    """Segments in order, skipping any written under an epoch older than a segment before it."""
    honoured = []
    for number in sorted(headers):
        epoch = headers[number].epoch
        if epoch < plan.epoch:
            log.warning(
                "%s was written under epoch %d after epoch %d had begun (a deposed master): ignored",
                segments.segment_name(number),
                epoch,
                plan.epoch,
            )
            continue
        plan.epoch = epoch
        honoured.append(number)
    return honoured


class Replayer:
    """Applies records to `plan.state` as FORMAT.md "Recovery" step 5 says. Cold recovery runs it
    over whole segments; a follower (follower.py) feeds it records as they appear, with `track` set
    to collect each BATCH's effective changes, and at takeover lets it finish the last segments."""

    def __init__(self, directory: Path, plan: Plan, seals: dict[int, int], last: int | None,
                 on_corruption: str) -> None:
        self.directory = directory
        self.on_corruption = on_corruption
        self.plan = plan
        self.seals = seals
        self.last = last
        self.candidate: LogState | None = None  # a snapshot being read; replaces the state at its end
        self.candidate_base = 0
        self.candidate_keep: int | None = None  # the snapshot keeps the segments from this one on
        self.chunks = 0
        self.track: list[Op] | None = None  # when a list, each BATCH's effective changes go there
        self.superseded: LogState | None = None  # the state a complete snapshot just replaced
        self.records = 0  # records applied so far

    def run(self, numbers: list[int]) -> None:
        for number in numbers:
            self.segment(number)
        self.end_of_log()

    def end_of_log(self) -> None:
        self._abandon("the log ends before its end marker")

    def segment(self, number: int, start: int = 0) -> None:
        """Replay one whole segment from its header (or from `start`, a checkpoint's position in
        it) to its honoured end (cold recovery)."""
        data = segments.read_segment(self.directory, number)
        limit = len(data)
        sealed = self.seals.get(number)
        if sealed is not None:
            if sealed > len(data):
                raise StoreCorrupted(
                    segments.where(number, len(data)), f"segment ends before its sealed end {sealed}"
                )
            if sealed < len(data):
                log.warning(
                    "%s: ignoring %d bytes past the sealed end (written after a newer master took over)",
                    segments.where(number, sealed),
                    len(data) - sealed,
                )
            limit = sealed
        header = records.decode_frame(data, 0, limit)
        if not isinstance(header, Frame):  # intact (checked by _read_headers) but cut by its seal
            raise StoreCorrupted(segments.where(number, 0), f"sealed at {limit}, inside its own header")
        end = self.replay(number, data, 0, max(start, header.end), limit, sealed is not None)
        self.plan.sizes[number] = len(data) if end == limit else end
        if sealed is None:
            self.plan.seal[number] = end

    def replay(self, number: int, data: bytes, base: int, offset: int, limit: int, sealed: bool) -> int:
        """Apply the records in `data[offset:limit]`, the bytes of segment `number` from offset
        `base` on; return the (absolute) offset replay ended at: `base + limit`, or a torn tail."""
        while offset < limit:
            step = self.record(number, data, offset, limit, base)
            if not isinstance(step, BadFrame):
                offset = step
                continue
            resume = self._bad(number, memoryview(data)[:limit], step, sealed, base)
            if resume is None:
                return base + step.offset
            offset = resume
        return base + limit

    def record(self, number: int, data: bytes, offset: int, limit: int, base: int = 0) -> int | BadFrame:
        """Apply the intact record at `data[offset]` and return where it ends, or the bad frame."""
        self.records += 1
        if self.track is None and (fast := self._batch(number, data, offset, limit, base)) is not None:
            return fast
        frame = records.decode_frame(data, offset, limit)
        if isinstance(frame, Frame):
            self._record(number, frame, base)
            return frame.end
        return frame

    def _batch(self, number: int, data: bytes, offset: int, limit: int, base: int) -> int | None:
        """Replay the intact BATCH of plain adds and removes at `offset` without building its
        messages, and return where it ends; None if it is anything else (`_record` then takes it)."""
        payload = framing.payload_at(data, offset, limit, RecordType.BATCH)
        if payload is None or (items := records.replay_items(payload)) is None:
            return None
        if self.candidate is not None:
            self._abandon("a write follows it")
        end = offset + records.HEADER_SIZE + len(payload)
        self.plan.state.apply_items(items, Location(number, base + offset, end - offset))
        return end

    def _bad(self, number: int, data: memoryview, frame: BadFrame, sealed: bool, base: int = 0) -> int | None:
        """A bad frame: None for a torn tail (cut there), else the offset replay resumes at."""
        at = base + frame.offset
        where = segments.where(number, at)
        resume = records.next_frame_after(data, frame.offset)
        if number == self.last and not sealed and resume is None:
            # Nothing after it is intact: a torn tail. An incomplete frame is what a crash leaves;
            # a whole one failing its checksum may be torn too, or damage: nothing proves it durable.
            torn = frame.fault in (Fault.SHORT_HEADER, Fault.SHORT_PAYLOAD, Fault.TOO_LONG)
            log.log(logging.WARNING if torn else logging.ERROR,
                    "%s: torn tail (%s); truncating, %d bytes dropped (offsets %d-%d, copied to quarantine/)",
                    where, frame.reason, len(data) - frame.offset, at, base + len(data))
            self.plan.quarantine.append((number, at, bytes(data[frame.offset:])))
            self.plan.truncate = (number, at)
            return None
        until = len(data) if resume is None else resume
        why = ("intact records follow it" if resume is not None
               else f"the segment is sealed at {base + len(data)}")
        if self.on_corruption != "quarantine" or self.candidate is not None:
            how = ("a compaction snapshot cannot lose a chunk: restore this segment from a copy, or move "
                   "the store aside" if self.candidate is not None else
                   'to start with the records after it, set store.on_corruption = "quarantine" (the '
                   "damaged bytes are kept in quarantine/)")
            raise StoreCorrupted(where, f"{frame.reason}, and {why}: damage, not a torn write; {how}; "
                                 "see docs/operations.md")
        log.error("%s: %s, and %s: 1 damaged range of %d bytes (offsets %d-%d) quarantined; its "
                  "operations are lost, replay goes on at %d", where, frame.reason, why, until - frame.offset,
                  at, base + until, base + until)
        self.plan.quarantine.append((number, at, bytes(data[frame.offset:until])))
        return until

    def _record(self, number: int, frame: Frame, base: int = 0) -> None:
        where = segments.where(number, base + frame.offset)
        kind = frame.type
        if kind is RecordType.SEGMENT:
            raise StoreCorrupted(where, "segment header in the middle of a segment")
        if kind is RecordType.BATCH:
            self._abandon("a write follows it")
            ops = records.decode_batch(frame.payload, where)
            if self.track is None:
                self.plan.state.apply(ops, _location(number, frame, base))
            else:
                self.track.extend(self.plan.state.apply_tracked(ops, _location(number, frame, base)))
        elif kind is RecordType.SNAP_BEGIN:
            self._abandon("another snapshot begins")
            base_number, keep = records.decode_snap_begin(frame.payload, where)
            if base_number != number:
                raise StoreCorrupted(where, f"snapshot begins in segment {number}, names base {base_number}")
            self.candidate, self.candidate_base = LogState(self.plan.state.window), base_number
            self.candidate_keep = keep
            self.chunks = 0
        elif kind is RecordType.SNAP_END:
            base_number, chunks = records.decode_snap_marker(frame.payload, where, 2)
            if self.candidate is None or base_number != self.candidate_base or chunks != self.chunks:
                raise StoreCorrupted(
                    where, f"snapshot end (base {base_number}, {chunks} chunks) does not match its start"
                )
            self._adopt(self.candidate)
        else:
            self._chunk(number, frame, base)

    def _adopt(self, snapshot: LogState) -> None:
        keep, old = self.candidate_keep, self.plan.state
        self.candidate = None
        if keep is None:
            self.plan.state, self.plan.replaced_below = snapshot, self.candidate_base
        else:
            self.plan.state, self.plan.replaced_below = old.after_snapshot(snapshot, keep), keep
        self.superseded = None if self.plan.state is old else old

    def _chunk(self, number: int, frame: Frame, base: int) -> None:
        where = segments.where(number, base + frame.offset)
        if self.candidate is None:
            raise StoreCorrupted(where, "snapshot chunk outside a snapshot")
        self.chunks += 1
        if frame.type is RecordType.SNAP_MESSAGES:
            queue, messages = records.decode_snap_messages(frame.payload, where)
            for message in messages:
                self.candidate.add(queue, message, _location(number, frame, base), note_producer=False)
        elif frame.type is RecordType.SNAP_SUBSCRIPTIONS:
            for sub in records.decode_snap_subscriptions(frame.payload, where):
                self.candidate.put_subscription(sub)
        else:
            for producer_id in records.decode_snap_producers(frame.payload, where):
                self.candidate.note_producer(producer_id)

    def _abandon(self, why: str) -> None:
        if self.candidate is not None:
            log.warning(
                "incomplete compaction snapshot in %s ignored (%s); the segments before it still count",
                segments.segment_name(self.candidate_base),
                why,
            )
            self.candidate = None


def _location(number: int, frame: Frame, base: int = 0) -> Location:
    return Location(number, base + frame.offset, frame.size)
