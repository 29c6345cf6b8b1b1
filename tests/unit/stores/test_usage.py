"""The store usage monitor (stores/usage.py) and the reserve (stores/reserve.py), on real stores."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from config.model import StoreSettings
from stores import reserve
from stores.base import StoredMessage
from stores.journal.store import JournalStore
from stores.usage import DEFAULT_LIMIT, StoreUsage, default_limit, store_bytes
from tests.helpers.tmpfs import fill, small_tmpfs

MiB = 1024 * 1024


def test_writes_noted_between_measurements_count_at_once(tmp_path: Path) -> None:
    async def run() -> None:
        journal, usage = await started(tmp_path, usage_limit=4 * MiB)
        try:
            assert not usage.full
            usage.note(4 * MiB)  # a burst: full before the monitor measures again
            assert usage.full
        finally:
            await usage.close()
            await journal.close()
    asyncio.run(run())


def test_the_default_limit_is_100_gib_capped_to_ninety_percent_of_the_free_space() -> None:
    assert default_limit(used=0, free=10 * 1024**4) == DEFAULT_LIMIT
    assert default_limit(used=5 * MiB, free=100 * MiB) == 5 * MiB + 90 * MiB


def message(n: int, size: int = 64 * 1024) -> StoredMessage:
    return StoredMessage(f"m{n}", "/queue/a", {}, bytes([n % 251]) * size)


async def started(tmp_path: Path, **store: object) -> tuple[JournalStore, StoreUsage]:
    values: dict[str, object] = {"journal_max_file_size": 256 * 1024, "cleanup_interval": 600.0,
                                 "min_free": 0, "reserve": 0, **store}
    settings = StoreSettings(**values)  # type: ignore[arg-type]
    journal = JournalStore(tmp_path / "journal", settings)
    await journal.open()
    usage = StoreUsage(journal, settings, tmp_path, interval=0.05)
    await usage.start()
    return journal, usage


async def wait_until(condition, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def test_full_at_the_limit_room_times_out_then_reclaim_frees_it(tmp_path: Path) -> None:
    journal, usage = await started(tmp_path, usage_limit=2 * MiB)
    try:
        assert usage.limit == 2 * MiB and not usage.full
        n = 0
        while store_bytes(journal.directory) < 2 * MiB:
            await journal.enqueue("/queue/a", message(n))
            n += 1
        await wait_until(lambda: usage.full)  # the next measurement sees it
        assert 2 * MiB / (64 * 1024) - 2 <= n <= 2 * MiB / (64 * 1024) + 2
        assert "store.usage_limit" in usage.reason() and "2.0 MiB" in usage.reason()
        began = time.monotonic()
        assert await usage.room(0.3) is False
        assert time.monotonic() - began >= 0.25
        waiter = asyncio.ensure_future(usage.room(30.0))
        for i in range(n):  # consumers remove everything: the monitor reclaims, files go
            await journal.remove("/queue/a", f"m{i}")
            usage.note(64, removed=1)
        assert await waiter is True
        await wait_until(lambda: store_bytes(journal.directory) < MiB)
    finally:
        await usage.close()
        await journal.close()


async def test_min_free_holds_producers_before_the_disk_is_full(tmp_path: Path) -> None:
    journal, usage = await started(tmp_path, usage_limit=1024**4, min_free=1024**5)
    try:
        assert usage.full
        assert "store.min_free" in usage.reason()
    finally:
        await usage.close()
        await journal.close()


def test_reserve_release_and_restore(tmp_path: Path) -> None:
    assert reserve.release(tmp_path) == 0
    assert reserve.restore(tmp_path, MiB) and reserve.present(tmp_path, MiB)
    assert reserve.reserve_path(tmp_path).stat().st_blocks * 512 >= MiB  # allocated, not sparse
    assert reserve.release(tmp_path) == MiB and not reserve.present(tmp_path, MiB)


def test_restore_on_a_full_disk_says_no_and_leaves_nothing(tmp_path: Path) -> None:
    with small_tmpfs(tmp_path / "mnt", 4) as mnt:
        fill(mnt)
        assert reserve.restore(mnt, MiB) is False
        assert sorted(p.name for p in mnt.iterdir()) == ["filler"]


async def test_the_monitor_makes_the_reserve_again_once_there_is_room(tmp_path: Path) -> None:
    journal, usage = await started(tmp_path, reserve=MiB)
    try:
        await wait_until(lambda: reserve.present(tmp_path, MiB))
    finally:
        await usage.close()
        await journal.close()


@pytest.mark.parametrize("size", [0])
def test_no_reserve_configured_is_no_file(tmp_path: Path, size: int) -> None:
    assert reserve.restore(tmp_path, size) and not reserve.reserve_path(tmp_path).exists()
