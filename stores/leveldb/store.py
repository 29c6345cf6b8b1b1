"""LevelDBStore: the `Store` contract over one plyvel DB (key layout in FORMAT.md).

LevelDB orders keys and applies a `WriteBatch` atomically, so the whole group of a group commit
is one batch written once with `sync=True` (design section 3: concurrent writers share one
fsync). Where each message is (`i/` keys: queue, message id -> sequence number) and how many each
queue holds (`d/` keys) are kept in the DB and changed in the same batch as the messages, so an
open reads the counters and each queue's head, never every message (FORMAT.md, "Open"). The
messages added since open are also indexed in memory; that index and the depths are changed while
a group is staged and rolled back if the batch is not written, so memory never holds what the disk
refused.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import partial
from pathlib import Path

import plyvel

from config.model import StoreSettings
from stores.base import (
    AddMessage,
    DropSubscription,
    Fence,
    Op,
    Page,
    PutSubscription,
    Recovered,
    RemoveMessage,
    Store,
    StoreClosed,
    StoreCorrupted,
    StoredMessage,
    StoreError,
    StoreStats,
    check_page,
)
from stores.bulk import gc_paused
from stores.fsio import directory_usage
from stores.groupcommit import GroupCommitter, start_committer
from stores.heads import recovered_heads
from stores.leveldb import keys
from stores.leveldb.hints import SeqHints
from stores.reads import ReadGate

log = logging.getLogger(__name__)

Undo = list[Callable[[], object]]


class _Prepared(list[Op]):
    """A caller's batch with its values encoded up front, so a bad op fails only its own writer."""

    def __init__(self, ops: Sequence[Op], values: list[bytes | None], index_keys: list[bytes]) -> None:
        super().__init__(ops)
        self.values = values
        self.index_keys = index_keys  # per op: its message's i/ key (a drop: the queue's i/ prefix)


class LevelDBStore(Store):
    kind = "leveldb"

    def __init__(self, directory: Path, settings: StoreSettings, fence: Fence | None = None) -> None:
        super().__init__(directory, settings, fence)
        self._db: plyvel.DB | None = None
        self._committer: GroupCommitter | None = None
        self._closed = False
        self._seqs: dict[str, dict[str, int]] = {}  # queue -> message id -> seq, added since open
        self._depths: dict[str, int] = {}  # queue -> messages stored (its d/ key), non-zero only
        # While a group is staged: the depths before it of the queues it changed, and the messages it
        # removed (their i/ keys are still in the DB until the batch is written).
        self._touched: dict[str, int] = {}
        self._gone: set[tuple[str, str]] = set()
        self._removed: list[tuple[str, str]] = []  # every message the staged group removes
        self._hints = SeqHints()  # seqs of messages pages returned: their removal needs no lookup
        self._pids: dict[str, int] = {}  # producer id -> seq of its p/ key, oldest first
        self._next_seq = 1
        self._messages = 0
        self._unsynced = False  # a group was written with sync=False since the last sync
        self._reads = ReadGate("leveldb store")

    # -- open ---------------------------------------------------------------------------------

    async def open(self) -> Recovered:
        if self._db is not None or self._closed:
            raise StoreError("a store object is opened once; build a new one to reopen")
        recovered = await asyncio.to_thread(self._open_blocking)
        self._committer = start_committer(self, self._apply, self._sync)
        self._reads.open()
        return recovered

    def _open_blocking(self) -> Recovered:
        self.directory.mkdir(parents=True, exist_ok=True)
        db = _open_db_when_free(self.directory)
        try:
            if self._claim(db):
                self._upgrade(db)
            recovered = self._load(db)
        except plyvel.Error as exc:
            db.close()
            raise StoreCorrupted(str(self.directory), f"LevelDB failed while reading: {exc}") from None
        except BaseException:
            db.close()
            raise
        self._db = db
        log.info(
            "leveldb store %s opened: %d messages in %d queues, %d subscriptions, epoch %d",
            self.directory,
            self._messages,
            len(recovered.queues),
            len(recovered.subscriptions),
            self.fence.epoch,
        )
        return recovered

    def _claim(self, db: plyvel.DB) -> bool:
        """Check the format version and record our fencing epoch (refusing if a newer master wrote).
        True: the directory is in the older format, without counters, and must be upgraded."""
        found = db.get(keys.META_FORMAT)
        if found is not None and found not in (_FORMAT, _UPGRADABLE):
            raise StoreError(f"{self.directory}: LevelDB store format {found!r} is not supported")
        raw = db.get(keys.META_EPOCH)
        stored = 0 if raw is None else keys.parse_u64(raw, f"{self.directory} meta/epoch")
        if self.fence.epoch > 0 and stored > self.fence.epoch:
            raise StoreClosed(
                f"{self.directory}: the store was written under epoch {stored}, newer than ours "
                f"({self.fence.epoch}); another master has taken over"
            )
        batch = db.write_batch(sync=True)
        if found is None:  # a new store; an upgrade writes the format only once it has finished
            batch.put(keys.META_FORMAT, _FORMAT)
        if self.fence.epoch > stored:
            batch.put(keys.META_EPOCH, keys.u64(self.fence.epoch))
        batch.write()
        return bool(found == _UPGRADABLE)

    def _upgrade(self, db: plyvel.DB) -> None:
        """Format 1 has no i/ or d/ keys: build them from one full scan, once, then mark format 2.
        Rerun whole if cut short (the format is written last): it first deletes what a cut-short run
        left, which an older version may since have made stale by writing without them."""
        started = time.monotonic()
        log.info("leveldb store %s is in format 1: building its index and queue depths from a full "
                 "scan (once; later opens read only the depths and each queue's head)", self.directory)
        _delete_prefix(db, keys.INDEX_PREFIX)
        _delete_prefix(db, keys.DEPTH_PREFIX)
        depths: dict[str, int] = {}
        names: dict[bytes, str] = {}  # one entry per queue (keys.parse_message_key)
        max_seq = 0
        batch, staged = db.write_batch(sync=True), 0
        with gc_paused(), db.iterator(prefix=keys.MESSAGE_PREFIX) as it:
            for key, value in it:
                queue, seq = keys.parse_message_key(key, names)
                message_id = keys.quick_message_id(value)
                if message_id is None:  # not as msgpack packs a value: read it slowly, or word it
                    message_id = keys.message_id_of(value, f"{self.directory} key {key!r}")
                batch.put(keys.index_key(queue, message_id), keys.u64(seq))
                depths[queue] = depths.get(queue, 0) + 1
                max_seq = max(max_seq, seq)
                staged += 1
                if staged % UPGRADE_BATCH == 0:
                    batch.write()
                    batch = db.write_batch(sync=True)
        for queue, depth in depths.items():
            batch.put(keys.depth_key(queue), keys.u64(depth))
        raw = db.get(keys.META_SEQ)
        stored_seq = 0 if raw is None else keys.parse_u64(raw, f"{self.directory} meta/seq")
        batch.put(keys.META_SEQ, keys.u64(max(stored_seq, max_seq + 1, 1)))
        batch.put(keys.META_FORMAT, _FORMAT)
        batch.write()
        log.info("leveldb store %s upgraded to format %d: %d messages in %d queues indexed in %.2f s",
                 self.directory, keys.FORMAT_VERSION, staged, len(depths), time.monotonic() - started)

    def _load(self, db: plyvel.DB) -> Recovered:
        """The counters (d/, meta/seq), subscriptions and duplicate window, then each queue's head by
        a seek to its first key (stores/base.py, Recovery): no message beyond the heads is read."""
        with db.iterator(prefix=keys.DEPTH_PREFIX) as it:
            for key, value in it:
                depth = keys.parse_u64(value, f"{self.directory} key {key!r}")
                if depth:
                    self._depths[keys.parse_depth_key(key)] = depth
        self._messages = sum(self._depths.values())
        with db.iterator(prefix=keys.SUBSCRIPTION_PREFIX) as it:
            subs = [keys.decode_subscription(v, f"{self.directory} key {k!r}") for k, v in it]
        max_seq = 0
        with db.iterator(prefix=keys.PRODUCER_PREFIX) as it:
            for key, value in it:
                seq = keys.parse_producer_key(key)
                pid = keys.decode_producer_id(value, f"{self.directory} key {key!r}")
                self._pids.pop(pid, None)
                self._pids[pid] = seq
                max_seq = max(max_seq, seq)
        raw = db.get(keys.META_SEQ)  # written in every batch that assigns one: exact
        stored_seq = 0 if raw is None else keys.parse_u64(raw, f"{self.directory} meta/seq")
        self._next_seq = max(stored_seq, max_seq + 1, 1)
        self._trim_window_after_restart(db)
        self._db = db  # for the reads of the heads; open() holds it only once they are read

        def read(wanted: dict[str, tuple[int | None, int]]) -> dict[str, Page]:
            return {queue: self._read_page(queue, *request) for queue, request in wanted.items()}

        try:
            recovered = recovered_heads(self._depths, read, self.settings.cursor_window, subs, self._pids)
        finally:
            self._db = None
        self._check_heads(recovered)
        return recovered

    def _check_heads(self, recovered: Recovered) -> None:
        """A depth that its queue's keys contradict is damage, found here rather than by a consumer."""
        for queue, head in recovered.queues.items():
            if not head or len(head) > self._depths[queue]:
                raise StoreCorrupted(
                    f"{self.directory} key {keys.depth_key(queue)!r}",
                    f"counts {self._depths[queue]} messages, the queue's head holds {len(head)}",
                )

    def _trim_window_after_restart(self, db: plyvel.DB) -> None:
        """A smaller duplicate_window than last run: forget the oldest ids now."""
        excess = len(self._pids) - self.settings.duplicate_window
        if excess <= 0:
            return
        batch = db.write_batch(sync=True)
        for pid in list(self._pids)[:excess]:
            batch.delete(keys.producer_key(self._pids.pop(pid)))
        batch.write()

    # -- write --------------------------------------------------------------------------------

    async def write(self, ops: Sequence[Op]) -> None:
        if self._committer is None or self._closed:
            raise StoreClosed("store is not open")
        if not ops:
            return
        await self._committer.submit(_prepare(ops))

    def _apply(self, batches: list[Sequence[Op]], sync: bool) -> None:
        """Writer thread: stage every batch of the group into ONE WriteBatch, then write it once."""
        db = self._db
        if db is None:
            raise StoreClosed("store is closed")
        undo: Undo = []
        start_seq, start_messages = self._next_seq, self._messages
        try:
            batch = db.write_batch(sync=sync)
            for ops in batches:
                assert isinstance(ops, _Prepared)
                self._stage(ops, batch, undo)
            self._stage_depths(batch)
            if self._next_seq != start_seq:
                batch.put(keys.META_SEQ, keys.u64(self._next_seq))
            batch.write()
            self._hints.written(self._removed)
            self._unsynced = self._unsynced or not sync
        except BaseException as exc:
            for fn in reversed(undo):
                fn()
            self._restore_depths()
            self._next_seq, self._messages = start_seq, start_messages
            self._pids = dict(sorted(self._pids.items(), key=lambda item: item[1]))
            if isinstance(exc, OSError | StoreError) or not isinstance(exc, Exception):
                raise
            raise StoreError(f"LevelDB write failed, nothing from this group was written: {exc}") from exc
        finally:
            self._touched.clear()
            self._gone.clear()
            self._removed.clear()

    def _stage(self, ops: _Prepared, batch: plyvel.WriteBatch, undo: Undo) -> None:
        for op, value, index_key in zip(ops, ops.values, ops.index_keys, strict=True):
            if isinstance(op, AddMessage):
                assert value is not None
                self._stage_add(op, value, index_key, batch, undo)
            elif isinstance(op, RemoveMessage):
                self._stage_remove(op.queue, op.message_id, index_key, batch, undo)
            elif isinstance(op, PutSubscription):
                assert value is not None
                batch.put(keys.subscription_key(op.subscription.key), value)
            elif isinstance(op, DropSubscription):
                batch.delete(keys.subscription_key(op.key))
                self._stage_drop(op.key, index_key, batch, undo)

    def _stage_add(self, op: AddMessage, value: bytes, index_key: bytes, batch: plyvel.WriteBatch,
                   undo: Undo) -> None:
        queue, message_id = op.queue, op.message.message_id
        self._stage_remove(queue, message_id, index_key, batch, undo)  # a re-added id replaces the old copy
        seq = self._next_seq
        self._next_seq += 1
        batch.put(keys.message_key(queue, seq), value)
        batch.put(index_key, keys.u64(seq))
        self._count(queue, 1)  # before it is remembered: `_holds_older` errs towards a lookup
        self._remember(queue, message_id, seq)
        undo.append(partial(self._forget, queue, message_id))
        self._gone.discard((queue, message_id))
        if op.message.producer_id is not None and self.settings.duplicate_window > 0:
            self._stage_producer(op.message.producer_id, seq, batch, undo)

    def _stage_remove(self, queue: str, message_id: str, index_key: bytes, batch: plyvel.WriteBatch,
                      undo: Undo, seq: int | None = None) -> None:
        if seq is None:
            seq = self._staged_seq(queue, message_id, index_key)
            if seq is None:
                return  # already gone: removal is idempotent
        batch.delete(keys.message_key(queue, seq))
        batch.delete(index_key)
        if message_id in self._seqs.get(queue, ()):
            self._forget(queue, message_id)
            undo.append(partial(self._remember, queue, message_id, seq))
        self._gone.add((queue, message_id))
        self._removed.append((queue, message_id))
        self._count(queue, -1)

    def _stage_drop(self, queue: str, prefix: bytes, batch: plyvel.WriteBatch, undo: Undo) -> None:
        """Every message of `queue`: those added since open (some maybe in this very group), then
        the rest from its i/ keys (the DB's committed state: skip what this group removed)."""
        for message_id in list(self._seqs.get(queue, ())):
            self._stage_remove(queue, message_id, prefix + message_id.encode("utf-8"), batch, undo)
        if not self._holds_older(queue):
            return  # its i/ keys are all of messages this group just removed
        with self._handle().iterator(prefix=prefix) as it:
            for index_key, raw in it:
                message_id = keys.parse_index_id(index_key, prefix)
                if (queue, message_id) not in self._gone:
                    seq = keys.parse_u64(raw, f"{self.directory} key {index_key!r}")
                    self._stage_remove(queue, message_id, index_key, batch, undo, seq)

    def _staged_seq(self, queue: str, message_id: str, index_key: bytes) -> int | None:
        """Writer thread: the seq of a message as the group staged so far leaves it (None: not stored).
        One stored before open is looked up in its i/ key, unless a page read it (hints.py)."""
        seq = self._seqs.get(queue, {}).get(message_id)
        if seq is not None or (queue, message_id) in self._gone or not self._holds_older(queue):
            return seq
        seq = self._hints.get((queue, message_id))
        return self._indexed(index_key) if seq is None else seq

    def _holds_older(self, queue: str) -> bool:
        """Does `queue` still hold messages stored before open? Only those are not in memory, so
        without them a message not in memory is not stored, and no lookup is needed (the usual
        case once a recovered backlog has drained, and always on a store that started empty)."""
        return self._depths.get(queue, 0) > len(self._seqs.get(queue, ()))

    def _indexed(self, index_key: bytes) -> int | None:
        raw = self._handle().get(index_key)
        return None if raw is None else keys.parse_u64(raw, f"{self.directory} key {index_key!r}")

    def _count(self, queue: str, delta: int) -> None:
        depth = self._depths.get(queue, 0)
        self._touched.setdefault(queue, depth)
        if depth + delta:
            self._depths[queue] = depth + delta
        else:
            del self._depths[queue]
        self._messages += delta

    def _stage_depths(self, batch: plyvel.WriteBatch) -> None:
        """The d/ key of every queue the group changed, in the same batch as the change."""
        for queue in self._touched:
            depth = self._depths.get(queue, 0)
            if depth:
                batch.put(keys.depth_key(queue), keys.u64(depth))
            else:
                batch.delete(keys.depth_key(queue))

    def _restore_depths(self) -> None:
        for queue, depth in self._touched.items():
            if depth:
                self._depths[queue] = depth
            else:
                self._depths.pop(queue, None)

    def _forget(self, queue: str, message_id: str) -> None:
        ids = self._seqs[queue]
        del ids[message_id]
        if not ids:
            del self._seqs[queue]

    def _remember(self, queue: str, message_id: str, seq: int) -> None:
        self._seqs.setdefault(queue, {})[message_id] = seq

    def _stage_producer(self, pid: str, seq: int, batch: plyvel.WriteBatch, undo: Undo) -> None:
        """Keep the last `duplicate_window` producer ids; older ones are deleted in the same batch."""
        old = self._pids.pop(pid, None)
        if old is not None:
            batch.delete(keys.producer_key(old))
            undo.append(partial(self._pids.__setitem__, pid, old))
        batch.put(keys.producer_key(seq), pid.encode("utf-8"))
        self._pids[pid] = seq
        undo.append(partial(self._pids.pop, pid, None))
        while len(self._pids) > self.settings.duplicate_window:
            oldest = next(iter(self._pids))
            oldest_seq = self._pids.pop(oldest)
            batch.delete(keys.producer_key(oldest_seq))
            undo.append(partial(self._pids.__setitem__, oldest, oldest_seq))

    def _sync(self) -> None:
        """LevelDB has no bare fsync: a synced write of a marker key forces its log to disk."""
        if self._db is not None and self._unsynced:
            self._db.put(keys.META_SYNC, b"", sync=True)
            self._unsynced = False

    # -- reads (stores/base.py "Reads") -------------------------------------------------------

    async def read(self, queue: str, message_id: str) -> StoredMessage | None:
        return await self._reads.run(self._read_one, queue, message_id)

    async def read_batch(self, queue: str, after: int | None, limit: int) -> Page:
        check_page(after, limit)
        return await self._reads.run(self._read_page, queue, after, limit)

    def position(self, queue: str, message_id: str) -> int | None:
        """The seq in its key (store order): from memory for a message added since open, else from
        a page's hint (hints.py), else its i/ key (one LevelDB get, usually from LevelDB's cache)."""
        self._reads.check()
        seq = self._seqs.get(queue, {}).get(message_id)
        if seq is not None or not self._holds_older(queue):
            return seq
        seq = self._hints.get((queue, message_id))
        if seq is not None:
            return seq
        try:
            index_key = keys.index_key(queue, message_id)
        except ValueError:
            return None  # not encodable, so never stored
        with _reading(f"{self.directory} key {index_key!r}"):
            return self._indexed(index_key)

    def _read_one(self, queue: str, message_id: str) -> StoredMessage | None:
        """Worker thread. The seq comes from the index, which a group changes while it is staged:
        a message whose add is staged but not yet written, or whose removal is, reads as None."""
        try:
            index_key = keys.index_key(queue, message_id)
        except ValueError:
            return None  # not encodable, so never stored
        with _reading(f"{self.directory} key {index_key!r}"):
            seq = self._staged_seq(queue, message_id, index_key)
        if seq is None:
            return None
        key = keys.message_key(queue, seq)
        where = f"{self.directory} key {key!r}"
        with _reading(where):
            value = self._handle().get(key, verify_checksums=True)
        if value is None:
            return None
        message = keys.decode_message(value, where)
        if message.message_id != message_id:
            raise StoreCorrupted(where, f"holds message {message.message_id!r}, not {message_id!r}")
        return message

    def _read_page(self, queue: str, after: int | None, limit: int) -> Page:
        """Worker thread: the queue's keys in order from one LevelDB iterator (its own snapshot).
        The seqs of messages stored before open are kept as hints for their removal (hints.py)."""
        start, stop = keys.queue_range(queue, after)
        messages: list[StoredMessage] = []
        seqs: list[int] = []
        names: dict[bytes, str] = {}  # the queue's name, unescaped once (keys.parse_message_key)
        learnt: list[tuple[tuple[str, str], int]] = []
        mark = self._hints.mark()  # before the iterator takes its snapshot
        try:
            with _reading(f"{self.directory} keys of {queue!r}"):
                with self._handle().iterator(start=start, stop=stop, verify_checksums=True) as it:
                    for key, value in it:
                        seqs.append(keys.parse_message_key(key, names)[1])
                        message = keys.quick_decode_message(value)
                        if message is None:  # refused: decode_message says why
                            message = keys.decode_message(value, f"{self.directory} key {key!r}")
                        messages.append(message)
                        if len(messages) >= limit:
                            break
            if seqs and self._holds_older(queue):
                learnt = list(zip(((queue, m.message_id) for m in messages), seqs, strict=True))
        finally:
            self._hints.learn(mark, learnt)
        return Page(messages, seqs[-1] if seqs else after)

    def _handle(self) -> plyvel.DB:
        if self._db is None:
            raise StoreClosed("store is closed")
        return self._db

    # -- stats / close ------------------------------------------------------------------------

    async def stats(self) -> StoreStats:
        files, size = await asyncio.to_thread(directory_usage, self.directory)
        return StoreStats(messages=self._messages, bytes=size, files=files)

    async def reclaim(self) -> None:
        # Removed messages are tombstones until LevelDB compacts them away; a full-range compaction
        # runs in a worker thread beside writes (LevelDB serializes internally), gated like a read
        # so that close() waits for it before the handle goes. The bounds are explicit: plyvel turns
        # an omitted stop into the empty key, and LevelDB then compacts nothing. Every key of ours
        # starts with a one-letter prefix and "/" (keys.py), so it sorts below 0xff.
        await self._reads.run(lambda: self._handle().compact_range(start=b"", stop=_ALL_KEYS_BELOW))

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            await self._reads.close()  # before the DB handle goes: a read may be inside LevelDB
            if self._committer is not None:
                await self._committer.close()
        finally:
            if self._db is not None:
                self._db.close()
                self._db = None


_ALL_KEYS_BELOW = b"\xff"
_FORMAT = str(keys.FORMAT_VERSION).encode()
_UPGRADABLE = str(keys.UPGRADABLE_FORMAT).encode()
UPGRADE_BATCH = 50_000  # index keys per synced batch while upgrading a format-1 directory

# A deposed master that has not yet noticed still holds LevelDB's own LOCK until it exits, which
# its keep-alive makes happen within about one period; wait that long before giving up.
LEVELDB_LOCK_WAIT = 5.0


class LevelDBBusy(StoreError):
    """Another process has the LevelDB directory open."""


def _open_db_when_free(directory: Path) -> plyvel.DB:
    deadline = time.monotonic() + LEVELDB_LOCK_WAIT
    while True:
        try:
            return _open_db(directory)
        except LevelDBBusy:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.05)


def _open_db(directory: Path) -> plyvel.DB:
    try:
        # The bloom filter makes the lookup of a new message's i/ key (is this id stored already?)
        # a miss without reading a block; files written without one are read as before.
        return plyvel.DB(str(directory), create_if_missing=True, paranoid_checks=True, bloom_filter_bits=10)
    except plyvel.IOError as exc:
        if "lock" in str(exc).lower():
            raise LevelDBBusy(
                f"LevelDB at {directory} is already open in another process (its LOCK file is held); "
                f"only the master may open the store: {exc}"
            ) from None
        raise StoreError(f"cannot open LevelDB at {directory}: {exc}") from None
    except plyvel.CorruptionError as exc:
        raise StoreCorrupted(str(directory), f"LevelDB reports corruption: {exc}") from None
    except plyvel.Error as exc:
        raise StoreError(f"cannot open LevelDB at {directory}: {exc}") from None


def _delete_prefix(db: plyvel.DB, prefix: bytes) -> None:
    batch, staged = db.write_batch(sync=True), 0
    with db.iterator(prefix=prefix, include_value=False) as it:
        for key in it:
            batch.delete(key)
            staged += 1
            if staged % UPGRADE_BATCH == 0:
                batch.write()
                batch = db.write_batch(sync=True)
    batch.write()


@contextmanager
def _reading(where: str) -> Iterator[None]:
    try:
        yield
    except plyvel.CorruptionError as exc:
        raise StoreCorrupted(where, f"LevelDB reports corruption: {exc}") from None
    except plyvel.Error as exc:
        raise StoreError(f"{where}: LevelDB read failed: {exc}") from None


def _prepare(ops: Sequence[Op]) -> _Prepared:
    values: list[bytes | None] = []
    index_keys: list[bytes] = []  # encoded here, so a name or id that cannot be fails its own batch
    try:
        for op in ops:
            if isinstance(op, AddMessage):
                values.append(keys.encode_message(op.message))
                index_keys.append(keys.index_key(op.queue, op.message.message_id))
            elif isinstance(op, PutSubscription):
                values.append(keys.encode_subscription(op.subscription))
                index_keys.append(b"")
            elif isinstance(op, RemoveMessage):
                values.append(None)
                index_keys.append(keys.index_key(op.queue, op.message_id))
            elif isinstance(op, DropSubscription):
                values.append(None)
                index_keys.append(keys.index_prefix(op.key))
            else:
                raise TypeError(f"unknown store operation {op!r}")
    except (TypeError, ValueError, OverflowError) as exc:
        raise StoreError(f"cannot store this batch: {exc}") from None
    return _Prepared(ops, values, index_keys)

