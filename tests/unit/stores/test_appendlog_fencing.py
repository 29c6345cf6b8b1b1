"""Fencing of the append log: a deposed master that still writes is never honoured (FORMAT.md)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from config.model import StoreSettings
from stores.appendlog import records, segments
from stores.appendlog.records import RecordType
from stores.appendlog.store import AppendLogStore
from stores.base import AddMessage, Fence, Recovered, StoreClosed, StoredMessage


class StaticFence(Fence):
    """The fence of a master that has not (yet) noticed it was deposed: check() always passes."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def check(self) -> None:
        return None


def settings() -> StoreSettings:
    return StoreSettings(type="appendlog", appendlog_segment_size=64 * 1024)


def msg(n: int, size: int = 10) -> StoredMessage:
    return StoredMessage(f"m{n}", "/queue/a", {}, b"x" * size, None)


async def opened(path: Path, epoch: int) -> tuple[AppendLogStore, Recovered]:
    store = AppendLogStore(path, settings(), StaticFence(epoch))
    return store, await store.open()


def ids(recovered: Recovered) -> list[str]:
    return [m.message_id for m in recovered.queues.get("/queue/a", [])]


async def test_appends_of_a_deposed_master_past_the_seal_are_ignored(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    old, _ = await opened(tmp_path, epoch=1)
    await old.enqueue("/queue/a", msg(1))
    new, recovered = await opened(tmp_path, epoch=2)  # takes over while the old one still runs
    assert ids(recovered) == ["m1"]
    await old.enqueue("/queue/a", msg(2))  # valid records, appended to the old segment after the seal
    await new.enqueue("/queue/a", msg(3))
    await old.close()
    await new.close()

    with caplog.at_level(logging.WARNING):
        store, recovered = await opened(tmp_path, epoch=2)
    assert ids(recovered) == ["m1", "m3"]
    assert "past the sealed end" in caplog.text
    await store.close()
    with pytest.raises(StoreClosed, match="epoch 2"):
        await AppendLogStore(tmp_path, settings(), StaticFence(1)).open()


async def test_a_deposed_master_cannot_rotate_into_the_new_masters_segment(tmp_path: Path) -> None:
    old, _ = await opened(tmp_path, epoch=1)
    await old.enqueue("/queue/a", msg(0, size=63 * 1024))
    new, _ = await opened(tmp_path, epoch=2)
    await old.enqueue("/queue/a", msg(1, size=2048))  # fills the segment: the next group rotates
    with pytest.raises(StoreClosed, match="already exists"):
        await old.enqueue("/queue/a", msg(2))
    with pytest.raises(StoreClosed):
        await old.enqueue("/queue/a", msg(3))  # fenced for good
    await new.enqueue("/queue/a", msg(4))
    await old.close()
    await new.close()
    store, recovered = await opened(tmp_path, epoch=3)
    assert ids(recovered) == ["m0", "m4"]
    await store.close()


async def test_a_segment_from_an_older_epoch_after_a_newer_one_is_ignored(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store, _ = await opened(tmp_path, epoch=5)
    await store.enqueue("/queue/a", msg(1))
    await store.close()
    number = segments.list_segments(tmp_path)[-1] + 1
    stray = segments.create_segment(tmp_path, number, epoch=4, sealed={})
    batch = records.encode_batch([AddMessage("/queue/a", msg(2))])
    stray.append(records.encode_frame(RecordType.BATCH, batch))
    stray.close()
    with caplog.at_level(logging.WARNING):
        store, recovered = await opened(tmp_path, epoch=6)
    assert ids(recovered) == ["m1"] and "deposed master" in caplog.text
    await store.close()


async def test_an_unfenced_tool_can_open_a_fenced_log_without_lowering_its_epoch(tmp_path: Path) -> None:
    store, _ = await opened(tmp_path, epoch=4)
    await store.enqueue("/queue/a", msg(1))
    await store.close()
    store, _ = await opened(tmp_path, epoch=0)
    await store.enqueue("/queue/a", msg(2))
    await store.close()
    store, recovered = await opened(tmp_path, epoch=4)
    assert ids(recovered) == ["m1", "m2"]
    await store.close()
