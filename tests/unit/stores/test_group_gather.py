"""Group commit gathering (stores/groupcommit.py): a group that waits for the writers the last
groups had is still bounded, and every write it gathers, or fails to gather, is durable.

On every store, with real files: producers that each wait for their write before the next, as
receipted producers do, then a lone writer after large groups (the gathering group waits for
writers that never come).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from stores.base import AddMessage, Store
from tests.unit.stores.contract import ids, message, opened, recover, require_store

KINDS = ["journal", "leveldb", "appendlog"]
WAIT = 30.0  # generous: the CI machine is slow


async def _producer(store: Store, name: str, count: int) -> None:
    for n in range(count):
        await store.write([AddMessage("/queue/a", message(f"{name}-{n}"))])


@pytest.mark.parametrize("kind", KINDS)
async def test_writers_waiting_for_each_write_all_get_durable(kind: str, tmp_path: Path) -> None:
    require_store(kind)
    async with opened(kind, tmp_path) as (store, _):
        async with asyncio.timeout(WAIT):
            await asyncio.gather(*(_producer(store, f"p{k}", 25) for k in range(4)))
    stored = set(ids(await recover(kind, tmp_path), "/queue/a"))
    assert stored == {f"p{k}-{n}" for k in range(4) for n in range(25)}


@pytest.mark.parametrize("kind", KINDS)
async def test_a_lone_write_after_large_groups_is_not_held_for_writers_that_never_come(
    kind: str, tmp_path: Path
) -> None:
    require_store(kind)
    async with opened(kind, tmp_path) as (store, _):
        for burst in range(2):  # two groups of 8: the next group expects 8
            await asyncio.gather(*(store.write([AddMessage("/queue/a", message(f"b{burst}-{n}"))])
                                   for n in range(8)))
        async with asyncio.timeout(WAIT):
            for n in range(3):  # alone, one after the other
                await store.write([AddMessage("/queue/a", message(f"lone-{n}"))])
    stored = ids(await recover(kind, tmp_path), "/queue/a")
    assert stored[-3:] == ["lone-0", "lone-1", "lone-2"]
    assert len(stored) == 19
