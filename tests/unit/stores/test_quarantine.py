"""Damage near the tail (issue 12 point 5), journal and append log alike.

A torn tail is cut, but its bytes are copied to `<store>/quarantine/<file>@<offset>` first; a whole
record failing its checksum at the tail is dropped the same way but said at ERROR; a bad record
with intact records after it refuses to open (naming file@offset and the setting that lets it
start) unless `store.on_corruption = "quarantine"`, which keeps every record after the damage.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from config.model import StoreSettings
from stores.appendlog import records as appendlog_records
from stores.appendlog import segments
from stores.appendlog.store import AppendLogStore
from stores.base import StoreCorrupted, StoredMessage
from stores.journal import layout
from stores.journal.records import iter_records
from stores.journal.store import JournalStore
from stores.quarantine import listing

KINDS = ["journal", "appendlog"]


def settings(kind: str, **overrides: object) -> StoreSettings:
    return StoreSettings(type=kind, checkpoint_interval=60.0, cleanup_interval=60.0, **overrides)  # type: ignore[arg-type]


def store_for(kind: str, directory: Path, **overrides: object) -> JournalStore | AppendLogStore:
    cls = JournalStore if kind == "journal" else AppendLogStore
    return cls(directory, settings(kind, **overrides))


async def prepare(kind: str, directory: Path) -> tuple[Path, list[int]]:
    """Five messages, one BATCH record each, at the end of the last file (no checkpoint after them).
    Returns that file and the offsets of those five records."""
    store = store_for(kind, directory)
    await store.open()
    for n in range(5):
        await store.enqueue("/queue/a", StoredMessage(f"m{n}", "/queue/a", {}, bytes([n]) * 700))
    if isinstance(store, JournalStore):
        store._checkpoint = lambda: None  # type: ignore[method-assign]
    await store.close()
    if kind == "journal":
        path = max(layout.data_files(directory).items())[1]
        data = path.read_bytes()
        offsets = [r.offset for r in iter_records(data, 0, len(data))][1:]  # [0] is the SEAL
    else:
        numbers = [n for n in segments.list_segments(directory) if segments.read_segment(directory, n)]
        path = directory / segments.segment_name(max(numbers))
        data = path.read_bytes()
        offsets = [f.offset for f in appendlog_records.iter_frames(data, 0, len(data))][1:]  # header
    assert len(offsets) == 5, offsets
    return path, offsets


async def reopen_ids(kind: str, directory: Path, **overrides: object) -> list[str]:
    store = store_for(kind, directory, **overrides)
    recovered = await store.open()
    await store.close()
    return [m.message_id for m in recovered.queues.get("/queue/a", [])]


def flip(path: Path, at: int) -> None:
    with open(path, "r+b") as f:
        f.seek(at)
        byte = f.read(1)
        f.seek(at)
        f.write(bytes([byte[0] ^ 0xFF]))


def quarantined(directory: Path, name: str) -> bytes:
    return (directory / "quarantine" / name).read_bytes()


@pytest.mark.parametrize("kind", KINDS)
async def test_a_whole_tail_record_failing_its_checksum_is_cut_quarantined_and_said_at_error(
    kind: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path, offsets = await prepare(kind, tmp_path)
    flip(path, offsets[-1] + 30)
    damaged = path.read_bytes()[offsets[-1]:]
    with caplog.at_level(logging.WARNING):
        assert await reopen_ids(kind, tmp_path) == ["m0", "m1", "m2", "m3"]
    assert quarantined(tmp_path, f"{path.name}@{offsets[-1]}") == damaged
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert any(f"{len(damaged)} bytes dropped" in r.getMessage() for r in errors), caplog.text
    assert any(f"{offsets[-1]}-{offsets[-1] + len(damaged)}" in r.getMessage() for r in errors)


@pytest.mark.parametrize("kind", KINDS)
async def test_an_incomplete_tail_is_a_torn_write_copied_aside_with_a_warning(
    kind: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path, offsets = await prepare(kind, tmp_path)
    os.truncate(path, path.stat().st_size - 100)
    torn = path.read_bytes()[offsets[-1]:]
    with caplog.at_level(logging.WARNING):
        assert await reopen_ids(kind, tmp_path) == ["m0", "m1", "m2", "m3"]
    assert quarantined(tmp_path, f"{path.name}@{offsets[-1]}") == torn
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text
    assert "torn tail" in caplog.text


@pytest.mark.parametrize("kind", KINDS)
async def test_damage_between_intact_records_refuses_to_open_and_says_how_to_proceed(
    kind: str, tmp_path: Path
) -> None:
    path, offsets = await prepare(kind, tmp_path)
    flip(path, offsets[1] + 30)
    before = path.read_bytes()
    with pytest.raises(StoreCorrupted) as raised:
        await store_for(kind, tmp_path).open()
    assert raised.value.where == f"{path.name}@{offsets[1]}"
    assert 'store.on_corruption = "quarantine"' in str(raised.value)
    assert path.read_bytes() == before  # nothing cut, nothing copied
    assert not (tmp_path / "quarantine").exists()


@pytest.mark.parametrize("kind", KINDS)
async def test_with_quarantine_on_the_records_after_the_damage_are_kept(
    kind: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    directory = tmp_path / kind  # a store directory inside a data directory, as the broker has it
    path, offsets = await prepare(kind, directory)
    flip(path, offsets[1] + 30)
    damaged = path.read_bytes()[offsets[1]:offsets[2]]
    with caplog.at_level(logging.ERROR):
        assert await reopen_ids(kind, directory, on_corruption="quarantine") == ["m0", "m2", "m3", "m4"]
    assert quarantined(directory, f"{path.name}@{offsets[1]}") == damaged  # exactly the bad record
    assert f"{len(damaged)} bytes (offsets {offsets[1]}-{offsets[2]}) quarantined" in caplog.text
    # Opening again gives the same (the damage is behind the new checkpoint or replayed the same way).
    assert await reopen_ids(kind, directory, on_corruption="quarantine") == ["m0", "m2", "m3", "m4"]
    found = listing(tmp_path)
    assert [(q.path.name, q.size) for q in found] == [(f"{path.name}@{offsets[1]}", len(damaged))]


@pytest.mark.parametrize("kind", KINDS)
async def test_a_bad_last_record_that_a_checkpoint_or_seal_vouches_for_is_not_a_torn_tail(
    kind: str, tmp_path: Path
) -> None:
    path, offsets = await prepare(kind, tmp_path)
    # Opening again writes what proves those records durable: the journal's checkpoint (its
    # position is past them) and, for both, a new file whose first record seals this one's end.
    assert await reopen_ids(kind, tmp_path) == ["m0", "m1", "m2", "m3", "m4"]
    flip(path, offsets[-1] + 30)
    before = path.read_bytes()
    with pytest.raises(StoreCorrupted) as raised:
        await store_for(kind, tmp_path).open()
    assert raised.value.where.startswith(f"{path.name}@{offsets[-1]}")
    assert path.read_bytes() == before  # not cut as if torn
