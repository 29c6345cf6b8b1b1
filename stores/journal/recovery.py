"""The recovery procedure of FORMAT.md section 4, steps 1-7 (steps 8-10 are the store's).

It rebuilds the index only: replay decodes each record but keeps where its messages are, not
the messages, so memory does not grow with the backlog; the store then reads the queues' heads.

Blocking; runs in a worker thread before the store accepts writes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from stores import fsio, quarantine
from stores.base import StoreClosed, StoreCorrupted, StoreError
from stores.bulk import gc_paused
from stores.journal import checkpoint as ckpt
from stores.journal import layout
from stores.journal.index import Index, Location
from stores.journal.layout import data_name
from stores.journal.reader import first_record_bytes, read_file
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

log = logging.getLogger(__name__)


@dataclass(slots=True)
class RecoveryStats:
    checkpoint_epoch: int | None = None
    start: tuple[int, int] = (1, 0)
    records_replayed: int = 0
    files_replayed: list[int] = field(default_factory=list)
    torn_bytes: int = 0
    ignored_bytes: int = 0
    quarantined: list[str] = field(default_factory=list)  # "db-N.log@OFFSET+LENGTH" of each range


@dataclass(slots=True)
class Result:
    index: Index
    ends: dict[int, int]  # honoured end of every existing data file
    epoch: int  # the epoch this opener writes under
    next_file: int
    stats: RecoveryStats


class _Recovery:
    def __init__(self, directory: Path, epoch: int, window: int, on_corruption: str = "refuse") -> None:
        self.directory = directory
        self.on_corruption = on_corruption
        self.epoch = epoch
        self.index = Index(window)
        self.stats = RecoveryStats()
        self.files = layout.data_files(directory)
        self.sizes = {n: p.stat().st_size for n, p in self.files.items()}
        self.ends: dict[int, int | None] = {}  # honoured end; None = to the end of the file
        self.void: set[int] = set()
        self.seen_epoch = 0

    def run(self) -> Result:
        for leftover in layout.leftovers(self.directory):
            leftover.unlink(missing_ok=True)
        start = self._load_checkpoint()
        self.stats.start = start
        tail = [n for n in self.files if n >= start[0]]
        self._apply_seals(tail, start)
        last = max((n for n in tail if self.sizes[n] > 0 and n not in self.void), default=None)
        for n in tail:
            if n not in self.void and self.sizes[n] > 0:
                self._replay(n, start[1] if n == start[0] else 0, last=n == last)
        ends = {n: (self.sizes[n] if end is None else end) for n, end in self.ends.items()}
        for n in self.void:
            ends[n] = 0
        return Result(
            index=self.index,
            ends={n: ends.get(n, 0) for n in self.files},
            epoch=self.epoch if self.epoch > 0 else self.seen_epoch,
            next_file=max(self.files, default=0) + 1,
            stats=self.stats,
        )

    def _check_epoch(self, found: int) -> None:
        self.seen_epoch = max(self.seen_epoch, found)
        if self.epoch > 0 and found > self.epoch:
            raise StoreClosed(f"a newer master (epoch {found}) has written this store; ours is {self.epoch}")

    def _load_checkpoint(self) -> tuple[int, int]:
        found = layout.checkpoints(self.directory)
        if not found:
            if self.files and 1 not in self.files:
                raise StoreCorrupted(
                    "checkpoint", f"missing, and {data_name(1)} is gone: the index cannot be rebuilt"
                )
            for n in self.files:
                self.ends[n] = None
            return (min(self.files, default=1), 0)
        epoch, path = max(found.items())
        self._check_epoch(epoch)
        try:
            with ckpt.reading(path) as cp:  # the index is built as the file is read
                self.index.load(cp.prefixes, cp.loading(), cp.records)
        except ckpt.CheckpointError as exc:
            raise StoreCorrupted(path.name, str(exc)) from None
        self.stats.checkpoint_epoch = cp.epoch
        self.index.subscriptions = {s.key: s for s in cp.subscriptions}
        self.index.producers.extend(cp.producers)
        for n in self.files:
            if n < cp.pos[0] and n not in cp.files:
                log.warning("journal: ignoring %s: written by a deposed master (not in the checkpoint)", n)
                self.void.add(n)
            else:
                self.ends[n] = cp.files.get(n)
        return cp.pos

    def _apply_seals(self, tail: list[int], start: tuple[int, int]) -> None:
        """FORMAT.md section 4 step 5: SEALs limit the files below them."""
        bad: dict[int, tuple[str, bool]] = {}  # file → (problem, could be a torn tail)
        top_epoch = 0
        for n in tail:
            if self.sizes[n] == 0 or (n == start[0] and start[1] > 0):
                continue
            try:
                seal = _read_seal(self.files[n], n)
            except RecordError as exc:
                bad[n] = (str(exc), True)
                continue
            except ValueError as exc:
                bad[n] = (str(exc), False)
                continue
            self._check_epoch(seal.epoch)
            if seal.epoch < top_epoch:
                log.warning(
                    "journal: ignoring %s: epoch %d wrote it after epoch %d",
                    data_name(n),
                    seal.epoch,
                    top_epoch,
                )
                self.void.add(n)
                continue
            top_epoch = seal.epoch
            for m in self.files:
                if m < n:
                    end, limit = self.ends.get(m), seal.ends.get(m, 0)
                    self.ends[m] = limit if end is None else min(end, limit)
        last = max((n for n in tail if self.sizes[n] > 0 and n not in self.void), default=None)
        for n, (problem, torn) in bad.items():
            if n in self.void or self.ends.get(n) == 0 or (torn and n == last):
                continue  # void, or a torn tail that replay truncates (step 7)
            raise StoreCorrupted(f"{data_name(n)}@0", f"first record is not a valid SEAL: {problem}")

    def _replay(self, n: int, begin: int, last: bool) -> None:
        data = read_file(self.files[n])
        end = self.ends.get(n)
        if end is None:
            end = len(data)
        elif len(data) < end:
            raise StoreCorrupted(f"{data_name(n)}@{len(data)}", f"file ends before its sealed end {end}")
        elif len(data) > end:
            self.stats.ignored_bytes += len(data) - end
            log.warning(
                "journal: %s: ignoring %d bytes at offset %d beyond its sealed end (deposed master writes)",
                data_name(n),
                len(data) - end,
                end,
            )
        if begin > end:
            raise StoreCorrupted(f"{data_name(n)}@{end}", f"checkpoint position {begin} is beyond the end")
        self.stats.files_replayed.append(n)
        view = memoryview(data)[:end]
        offset = begin
        while offset < end:
            try:
                record = parse_record(view, offset)
            except RecordError as exc:
                resume = valid_record_after(view, offset)
                if resume is None and last and self.ends.get(n) is None:
                    self._truncate_tail(n, view, offset, end, exc.problem)
                    end = offset
                    break
                offset = self._skip_damage(n, view, offset, end if resume is None else resume, exc.problem)
                continue
            self._apply(n, record.offset, record.type, record.payload, record.end - offset)
            offset = record.end
        self.ends[n] = end
        self.sizes[n] = len(data)

    def _apply(self, n: int, offset: int, rtype: int, payload: bytes, size: int) -> None:
        where = f"{data_name(n)}@{offset}"
        if rtype == SEAL:
            if offset != 0:
                raise StoreCorrupted(where, "a SEAL record that is not the first record of its file")
            return
        assert rtype == BATCH
        try:
            ops = decode_batch(payload)
        except ValueError as exc:
            raise StoreCorrupted(where, f"undecodable BATCH: {exc}") from None
        self.index.apply(ops, Location(n, offset, size))
        self.stats.records_replayed += 1

    def _skip_damage(self, n: int, view: memoryview, offset: int, resume: int, problem: str) -> int:
        """FORMAT.md section 4 step 7: damage that a later record (or the file's sealed end) proves
        was once durable. Refused unless store.on_corruption = "quarantine"; then copied aside."""
        where = f"{data_name(n)}@{offset}"
        why = ("intact records follow it" if resume < len(view)
               else f"a SEAL or the checkpoint vouches for this file up to {len(view)}")
        if self.on_corruption != "quarantine":
            raise StoreCorrupted(where, f"{problem}, and {why}: this is damage, not a torn write. To start "
                                 "with the records after it, set store.on_corruption = \"quarantine\" "
                                 "(the damaged bytes are kept in quarantine/); see docs/operations.md")
        self._quarantine(n, view, offset, resume)
        log.error("journal: %s: %s, and %s: 1 damaged range of %d bytes (offsets %d-%d) quarantined; "
                  "its operations are lost, replay goes on at %d", where, problem, why, resume - offset,
                  offset, resume, resume)
        return resume

    def _quarantine(self, n: int, view: memoryview, offset: int, end: int) -> None:
        save_quarantined(self.directory, n, offset, bytes(view[offset:end]))
        self.stats.quarantined.append(f"{data_name(n)}@{offset}+{end - offset}")

    def _truncate_tail(self, n: int, view: memoryview, offset: int, size: int, problem: str) -> None:
        self.stats.quarantined.append(f"{data_name(n)}@{offset}+{size - offset}")
        cut_torn_tail(self.directory, n, offset, bytes(view[offset:size]), problem)
        self.stats.torn_bytes += size - offset


def _read_seal(path: Path, n: int) -> Seal:
    record = parse_record(first_record_bytes(path), 0)
    if record.type != SEAL:
        raise ValueError(f"record type {record.type} is not SEAL")
    seal = decode_seal(record.payload)
    if seal.file != n:
        raise ValueError(f"SEAL names file {seal.file}")
    return seal


def save_quarantined(directory: Path, n: int, offset: int, data: bytes) -> None:
    try:
        quarantine.save(directory, data_name(n), offset, data)
    except OSError as exc:
        # Never drop what could not be copied: the operator frees space (or fixes permissions).
        raise StoreError(f"{data_name(n)}@{offset}: cannot copy {len(data)} damaged bytes to "
                         f"quarantine/ before dropping them: {exc}") from None


def cut_torn_tail(directory: Path, n: int, offset: int, tail: bytes, problem: str) -> None:
    """Step 7's torn tail (cold recovery and a follower's takeover alike): copy it to quarantine,
    say so, truncate the file at `offset` and fsync it."""
    save_quarantined(directory, n, offset, tail)
    # An incomplete record is what a crash leaves. A whole one failing its checksum may be a torn
    # write too (pages reach the disk out of order) but also damage: nothing proves it was
    # durable, so it is dropped as torn, and said at ERROR.
    level = logging.WARNING if problem.startswith("incomplete") else logging.ERROR
    log.log(level, "journal: torn tail in %s at offset %d (%s): truncating, %d bytes dropped (offsets "
            "%d-%d, copied to quarantine/%s)", data_name(n), offset, problem, len(tail), offset,
            offset + len(tail), quarantine.quarantine_name(data_name(n), offset))
    f = fsio.open_append(layout.data_path(directory, n))
    try:
        f.truncate(offset)
        f.sync()
    finally:
        f.close()


def recover(directory: Path, epoch: int, duplicate_window: int, on_corruption: str = "refuse") -> Result:
    with gc_paused():
        return _Recovery(directory, epoch, duplicate_window, on_corruption).run()
