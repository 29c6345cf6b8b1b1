"""The daemon's heap trim (broker/daemon/heaptrim.py) gives freed memory back to the system."""

from __future__ import annotations

import asyncio
import threading

import pytest

from broker.daemon.heaptrim import find_trim, trim_periodically

MiB = 1024 * 1024


def rss_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def fragment(kept: list[bytearray]) -> None:
    """64 MiB of 2 KiB buffers made in another thread (its own arena, as the store's writer), of
    which one in sixteen is kept: the freed ones lie between kept ones, so `free` cannot return them."""
    made = [bytearray(2048) for _ in range(32 * 1024)]
    for block in made:
        block[::512] = b"\x01\x01\x01\x01"  # touched: resident
    kept.extend(made[::16])
    made.clear()


@pytest.mark.skipif(find_trim() is None, reason="this libc has no malloc_trim")
async def test_the_periodic_trim_returns_freed_heap_memory() -> None:
    kept: list[bytearray] = []
    before = rss_mib()
    worker = threading.Thread(target=fragment, args=(kept,))
    worker.start()
    worker.join()
    freed = rss_mib()
    assert freed - before > 32, (before, freed)  # what was freed is still resident
    task = asyncio.ensure_future(trim_periodically(0.05))
    try:
        await asyncio.sleep(0.5)
    finally:
        task.cancel()
    trimmed = rss_mib()
    assert freed - trimmed > 24, (before, freed, trimmed)
    assert len(kept) == 2048
