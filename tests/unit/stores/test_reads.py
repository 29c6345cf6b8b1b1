"""Reads of the file stores beyond the contract (stores/reads.py): the relocation retry, and
damage found by a read.

The race between a read and compaction is forced here, not waited for: a location looked up
before compaction is handed to the retry after compaction has moved the message and deleted the
file it pointed into. Damage is done to the real files on disk while the store is open.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from stores import heads as head_reads
from stores import reads
from stores.appendlog import records as log_records
from stores.appendlog.segments import segment_name
from stores.base import AddMessage, RemoveMessage, Store, StoreCorrupted, StoredMessage
from stores.journal.layout import data_name
from stores.journal.reader import load_messages
from stores.journal.records import encode_batch
from tests.unit.stores.contract import FILE_STORE_KINDS, message, opened
from tests.unit.stores.readcontract import SMALL, compact, numbered

KEY = ("/queue/a", "m3")


def read_parts(store: Store) -> tuple[reads.Locate, reads.Load, Callable[[int], str]]:
    """The store's own lookup, loader and file naming: what its reads hand to `reads.fetch`."""
    if store.kind == "journal":
        index = store._index  # type: ignore[attr-defined]
        return index.find, lambda n, wanted: load_messages(store.directory, n, wanted), data_name
    state = store._state  # type: ignore[attr-defined]
    return state.find, store._load, segment_name  # type: ignore[attr-defined]


async def churn(store: Store, numbers: range, keep: set[int]) -> None:
    """Add the numbered messages ten at a time and remove all but `keep`: dead bytes to compact."""
    for start in numbers[::10]:
        batch = range(start, start + 10)
        await store.write([AddMessage("/queue/a", numbered(n)) for n in batch])
        await store.write([RemoveMessage("/queue/a", f"m{n}") for n in batch if n not in keep])


def encode_add(kind: str, m: StoredMessage) -> bytes:
    """The record a write of one AddMessage puts on disk, in the store's format."""
    ops = [AddMessage("/queue/a", m)]
    if kind == "journal":
        return encode_batch(ops)
    return log_records.encode_frame(log_records.RecordType.BATCH, log_records.encode_batch(ops))


@pytest.mark.parametrize("kind", FILE_STORE_KINDS)
async def test_a_read_that_lost_the_race_with_compaction_looks_again(kind: str, tmp_path: Path) -> None:
    async with opened(kind, tmp_path, **SMALL) as (store, _):
        await churn(store, range(300), keep={3})
        await compact(store)
        locate, load, name = read_parts(store)
        stale = locate([KEY])  # looked up before a compaction ...
        await churn(store, range(1000, 1300), keep=set())
        await compact(store)  # ... that moves m3 forward and deletes the file it was in
        assert not (store.directory / name(stale[KEY].file)).exists()
        assert locate([KEY])[KEY].file > stale[KEY].file
        assert reads.fetch(stale, locate, load, name) == {KEY: numbered(3)}
        # Looked up, then consumed and its file deleted before the read opens it: nothing, no error.
        stale = locate([KEY])
        await store.remove(*KEY)
        await churn(store, range(2000, 2300), keep=set())
        await compact(store)
        assert not (store.directory / name(stale[KEY].file)).exists()
        assert reads.fetch(stale, locate, load, name) == {}


@pytest.mark.parametrize("kind", FILE_STORE_KINDS)
async def test_a_missing_file_under_a_live_message_is_corruption(kind: str, tmp_path: Path) -> None:
    async with opened(kind, tmp_path, **SMALL) as (store, _):
        for n in range(150):
            await store.enqueue("/queue/a", numbered(n))
        locate, _, name = read_parts(store)
        first = name(locate([("/queue/a", "m0")])[("/queue/a", "m0")].file)
        (store.directory / first).unlink()
        with pytest.raises(StoreCorrupted) as raised:
            await store.read("/queue/a", "m0")
        assert raised.value.where == first and "missing" in str(raised.value)
        with pytest.raises(StoreCorrupted):
            await store.read_batch("/queue/a", None, 10)
        assert await store.read("/queue/a", "m149") == numbered(149)


@pytest.mark.parametrize("kind", FILE_STORE_KINDS)
async def test_a_crc_failure_is_reported_with_file_and_offset(kind: str, tmp_path: Path) -> None:
    async with opened(kind, tmp_path) as (store, _):
        for n in range(5):
            await store.enqueue("/queue/a", numbered(n))
        locate, _, name = read_parts(store)
        loc = locate([KEY])[KEY]
        path = store.directory / name(loc.file)
        with open(path, "r+b") as f:  # one byte of m3's body, well inside its record
            f.seek(loc.offset + loc.length - 200)
            byte = f.read(1)
            f.seek(-1, os.SEEK_CUR)
            f.write(bytes([byte[0] ^ 0xFF]))
        with pytest.raises(StoreCorrupted) as raised:
            await store.read(*KEY)
        assert raised.value.where == f"{name(loc.file)}@{loc.offset}"
        with pytest.raises(StoreCorrupted):
            await store.read_batch("/queue/a", None, 10)
        assert await store.read("/queue/a", "m2") == numbered(2)


@pytest.mark.parametrize("kind", FILE_STORE_KINDS)
async def test_a_record_that_holds_another_message_is_corruption(kind: str, tmp_path: Path) -> None:
    async with opened(kind, tmp_path) as (store, _):
        for n in range(5):
            await store.enqueue("/queue/a", numbered(n))
        locate, _, name = read_parts(store)
        loc = locate([KEY])[KEY]
        # Intact, CRC and all, and of the same size: only the message id differs.
        impostor = encode_add(kind, message("m9", body=numbered(3).body))
        assert len(impostor) == loc.length
        fd = os.open(store.directory / name(loc.file), os.O_WRONLY)
        try:
            os.pwrite(fd, impostor, loc.offset)
        finally:
            os.close(fd)
        with pytest.raises(StoreCorrupted, match="does not hold message 'm3'") as raised:
            await store.read(*KEY)
        assert raised.value.where == f"{name(loc.file)}@{loc.offset}"


# Heads (stores/base.py, "Recovery"): read_heads over queues held as plain lists -------------


def listed(queues: dict[str, list[StoredMessage]], requested: list[int]) -> head_reads.ReadPages:
    """A ReadPages over in-memory lists, positions being list indexes; notes each page's limit."""
    def read(wanted: dict[str, tuple[int | None, int]]) -> dict[str, reads.Page]:
        pages = {}
        for queue, (after, limit) in wanted.items():
            requested.append(limit)
            start = 0 if after is None else after + 1
            chunk = queues[queue][start : start + limit]
            pages[queue] = reads.Page(chunk, start + len(chunk) - 1 if chunk else after)
        return pages
    return read


def sized(prefix: str, sizes: list[int]) -> list[StoredMessage]:
    return [StoredMessage(f"{prefix}{i}", "/queue/a", {}, b"x" * size) for i, size in enumerate(sizes)]


def test_heads_stop_at_the_window_whatever_the_sizes() -> None:
    queues = {
        "small-then-big": sized("s", [10] * 50 + [1000] * 3000),
        "exact": sized("e", [100] * 6 + [1] * 5),
        "one-too-big": sized("b", [5000, 1]),
        "short": sized("t", [1, 2]),
    }
    heads = head_reads.read_heads(list(queues), listed(queues, []), 600)
    assert [len(heads[q]) for q in queues] == [50, 6, 1, 2]
    assert heads["exact"] == queues["exact"][:6] and heads["one-too-big"] == queues["one-too-big"][:1]


def test_long_heads_are_read_in_growing_pages_that_fit_the_window() -> None:
    queues = {f"q{n}": sized(f"q{n}-", [100] * 5000) for n in range(3)}
    requested: list[int] = []
    heads = head_reads.read_heads(list(queues), listed(queues, requested), 100 * 1000)
    assert all(heads[q] == queues[q][:1000] for q in queues)
    # Pages sized by the average so far: about what fits, not pages growing past the window.
    assert sum(requested) <= 3 * (1000 + head_reads.FIRST_PAGE + 1)
