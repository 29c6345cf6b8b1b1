"""Fault injection under the file-based stores: power loss (unsynced bytes dropped), disk full,
torn and corrupted tails. The layer itself (tests/helpers/faultfs.py) is checked first."""

from __future__ import annotations

import asyncio
import errno
import os
from pathlib import Path

import pytest

from stores import fsio
from stores.base import StoreCorrupted, StoreError
from tests.helpers.faultfs import Append, FaultFS
from tests.unit.stores.contract import FILE_STORE_KINDS, ids, message, opened, recover, require_store

BODY = 2048  # bigger than any bookkeeping record, so a store's data record is recognisable


@pytest.fixture
def fs(monkeypatch: pytest.MonkeyPatch) -> FaultFS:
    return FaultFS().install(monkeypatch)


@pytest.fixture(params=FILE_STORE_KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    require_store(request.param)
    return str(request.param)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    path = tmp_path / "data"
    path.mkdir()
    return path


def body(n: int) -> bytes:
    return (f"{n:08}".encode() * (BODY // 8 + 1))[:BODY]


def require_tracked(fs: FaultFS, kind: str) -> None:
    assert fs.files, (
        f"store {kind!r} opened no file through stores.fsio.open_append (does it call AppendFile() or "
        f"`from stores.fsio import open_append`?): the fault layer cannot reach it"
    )


async def record_of_write(fs: FaultFS, write: asyncio.Future[None] | asyncio.Task[None]) -> Append:
    """The data record a single write appended: the largest append made while it ran."""
    before = len(fs.appends)
    await write
    made = fs.appends[before:]
    assert made, "the write appended nothing through stores.fsio"
    return max(made, key=lambda a: a.length)


# The layer itself -----------------------------------------------------------------------------


def test_crash_drops_only_unsynced_bytes(fs: FaultFS, tmp_path: Path) -> None:
    f = fsio.open_append(tmp_path / "log")
    f.append(b"durable")
    f.sync()
    f.append(b"lost")
    f.close()
    fs.crash()
    assert (tmp_path / "log").read_bytes() == b"durable"
    assert fs.dropped_bytes == 4


def test_file_created_after_freeze_is_empty_after_crash(fs: FaultFS, tmp_path: Path) -> None:
    fs.freeze()
    f = fsio.open_append(tmp_path / "late")
    f.append(b"x" * 100)
    f.sync()
    f.close()
    fs.crash()
    assert (tmp_path / "late").read_bytes() == b""


def test_append_fault_writes_part_raises_and_clears(fs: FaultFS, tmp_path: Path) -> None:
    f = fsio.open_append(tmp_path / "log")
    f.append(b"a" * 10)
    fs.fail_appends()
    with pytest.raises(OSError) as raised:
        f.append(b"b" * 10)
    assert raised.value.errno == errno.ENOSPC
    assert f.size == 10  # the logical end did not move, although part of the data reached the file
    fs.clear_faults()
    f.append(b"c" * 10)
    f.sync()
    f.close()
    assert (tmp_path / "log").read_bytes() == b"a" * 10 + b"c" * 10


def test_counted_faults_clear_themselves(fs: FaultFS, tmp_path: Path) -> None:
    f = fsio.open_append(tmp_path / "log")
    fs.fail_appends(count=1)
    with pytest.raises(OSError):
        f.append(b"x")
    f.append(b"y")
    fs.fail_syncs(count=1)
    with pytest.raises(OSError) as raised:
        f.sync()
    assert raised.value.errno == errno.EIO
    f.sync()
    f.close()
    assert fs.failed_appends == 1 and fs.failed_syncs == 1


# Stores under faults --------------------------------------------------------------------------


async def test_acknowledged_writes_survive_power_loss(fs: FaultFS, kind: str, data_dir: Path) -> None:
    acked: set[str] = set()

    async def add(n: int) -> None:
        await store.enqueue(f"/queue/{n % 3}", message(f"m{n}", destination=f"/queue/{n % 3}", body=body(n)))
        acked.add(f"m{n}")

    async with opened(kind, data_dir, sync="always") as (store, _):
        require_tracked(fs, kind)
        await asyncio.gather(*(add(n) for n in range(150)))
        await asyncio.gather(*(store.remove(f"/queue/{n % 3}", f"m{n}") for n in range(0, 150, 7)))
        removed = {f"m{n}" for n in range(0, 150, 7)}
        in_flight = [asyncio.ensure_future(add(n)) for n in range(150, 200)]
        await asyncio.sleep(0)
        survivors = set(acked) - removed
        await fs.crash_store(store)
    await asyncio.gather(*in_flight, return_exceptions=True)

    recovered = await recover(kind, data_dir)
    present = {m for q in range(3) for m in ids(recovered, f"/queue/{q}")}
    assert survivors <= present, f"lost acknowledged: {sorted(survivors - present)}"
    assert not present & removed, f"removed but back: {sorted(present & removed)}"
    assert present <= {f"m{n}" for n in range(200)}
    for q in range(3):
        numbers = [int(m[1:]) for m in ids(recovered, f"/queue/{q}")]
        assert numbers == sorted(numbers), f"/queue/{q} out of order"


async def test_unsynced_store_recovers_a_prefix_after_power_loss(
    fs: FaultFS, kind: str, data_dir: Path
) -> None:
    sent = [f"m{n}" for n in range(60)]
    async with opened(kind, data_dir, sync="never") as (store, _):
        require_tracked(fs, kind)
        for n, mid in enumerate(sent):
            await store.enqueue("/queue/a", message(mid, body=body(n)))
        await fs.crash_store(store)
    got = ids(await recover(kind, data_dir), "/queue/a")
    assert got == sent[: len(got)], "recovery after losing unsynced bytes must yield a prefix"


@pytest.mark.parametrize("ending", ["close", "crash"])
async def test_disk_full_fails_the_write_and_keeps_the_rest(
    fs: FaultFS, kind: str, data_dir: Path, ending: str
) -> None:
    async with opened(kind, data_dir) as (store, _):
        require_tracked(fs, kind)
        for n in range(3):
            await store.enqueue("/queue/a", message(f"m{n}", body=body(n)))
        fs.fail_appends(errno.ENOSPC)
        with pytest.raises(StoreError):
            await store.enqueue("/queue/a", message("full", body=body(99)))
        assert fs.failed_appends >= 1
        fs.clear_faults()
        await store.enqueue("/queue/a", message("m3", body=body(3)))
        await store.remove("/queue/a", "m0")
        if ending == "crash":
            await fs.crash_store(store)
    # The failed write was refused, so it must not come back: not even partly (it had no ack).
    assert ids(await recover(kind, data_dir), "/queue/a") == ["m1", "m2", "m3"]


async def test_one_full_disk_append_fails_only_its_own_write(fs: FaultFS, kind: str, data_dir: Path) -> None:
    async with opened(kind, data_dir) as (store, _):
        require_tracked(fs, kind)
        await store.enqueue("/queue/a", message("m0", body=body(0)))
        fs.fail_appends(errno.ENOSPC, count=1)
        with pytest.raises(StoreError):
            await store.enqueue("/queue/a", message("full", body=body(1)))
        await store.enqueue("/queue/a", message("m2", body=body(2)))  # the disk has room again
        await fs.crash_store(store)
    assert ids(await recover(kind, data_dir), "/queue/a") == ["m0", "m2"]


async def test_failed_sync_is_not_acknowledged(fs: FaultFS, kind: str, data_dir: Path) -> None:
    async with opened(kind, data_dir) as (store, _):
        require_tracked(fs, kind)
        await store.enqueue("/queue/a", message("m0", body=body(0)))
        fs.fail_syncs(errno.EIO, count=1)
        with pytest.raises(StoreError):
            await store.enqueue("/queue/a", message("eio", body=body(1)))
        assert fs.failed_syncs == 1
        await store.enqueue("/queue/a", message("m2", body=body(2)))
        await fs.crash_store(store)
    # "eio" was refused; whether its bytes survive is the store's business, but nothing
    # acknowledged may be lost and the order must hold.
    got = ids(await recover(kind, data_dir), "/queue/a")
    assert got in (["m0", "m2"], ["m0", "eio", "m2"]), got


async def test_torn_tail_drops_only_the_partial_record(fs: FaultFS, kind: str, data_dir: Path) -> None:
    async with opened(kind, data_dir) as (store, _):
        require_tracked(fs, kind)
        for n in range(4):
            await store.enqueue("/queue/a", message(f"m{n}", body=body(n)))
        last = await record_of_write(fs, asyncio.ensure_future(store.enqueue("/queue/a", message("m4"))))
        await fs.crash_store(store)
    os.truncate(last.path, last.offset + last.length // 2)

    async with opened(kind, data_dir) as (store, recovered):
        assert ids(recovered, "/queue/a") == ["m0", "m1", "m2", "m3"]
        await store.enqueue("/queue/a", message("m5", body=body(5)))
    # Writing after the repair must not leave the torn bytes in the way of the next recovery.
    assert ids(await recover(kind, data_dir), "/queue/a") == ["m0", "m1", "m2", "m3", "m5"]


async def test_checksum_failure_in_last_record_is_a_torn_tail(fs: FaultFS, kind: str, data_dir: Path) -> None:
    async with opened(kind, data_dir) as (store, _):
        require_tracked(fs, kind)
        for n in range(3):
            await store.enqueue("/queue/a", message(f"m{n}", body=body(n)))
        last = await record_of_write(
            fs, asyncio.ensure_future(store.enqueue("/queue/a", message("m3", body=body(3))))
        )
        await fs.crash_store(store)
    flip_byte(last.path, last.offset + last.length - BODY // 2)  # inside the body, not the framing
    assert ids(await recover(kind, data_dir), "/queue/a") == ["m0", "m1", "m2"]


async def test_corruption_before_the_tail_is_reported(fs: FaultFS, kind: str, data_dir: Path) -> None:
    records: list[Append] = []
    async with opened(kind, data_dir) as (store, _):
        require_tracked(fs, kind)
        for n in range(6):
            write = asyncio.ensure_future(store.enqueue("/queue/a", message(f"m{n}", body=body(n))))
            records.append(await record_of_write(fs, write))
    middle = records[2]
    flip_byte(middle.path, middle.offset + middle.length - BODY // 2)
    with pytest.raises(StoreCorrupted) as raised:
        await recover(kind, data_dir)
    assert middle.path.name in raised.value.where


def flip_byte(path: Path, offset: int) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)
        f.seek(offset)
        f.write(bytes([byte[0] ^ 0xFF]))
