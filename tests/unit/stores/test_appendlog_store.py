"""AppendLogStore: rotation, group commit, failed writes, torn tails and corruption on replay."""

from __future__ import annotations

import asyncio
import errno
import logging
import os
from pathlib import Path

import pytest

from config.model import StoreSettings
from stores import fsio
from stores.appendlog import records
from stores.appendlog.records import Frame, RecordType
from stores.appendlog.segments import list_segments, segment_name
from stores.appendlog.store import AppendLogStore
from stores.base import (
    AddMessage,
    DropSubscription,
    DurableSubscription,
    PutSubscription,
    Recovered,
    StoreClosed,
    StoreCorrupted,
    StoredMessage,
    StoreError,
)

SEGMENT = 64 * 1024  # the smallest segment size the settings allow: forces rotation quickly


def settings(**overrides: object) -> StoreSettings:
    values: dict[str, object] = {"type": "appendlog", "appendlog_segment_size": SEGMENT}
    return StoreSettings(**(values | overrides))  # type: ignore[arg-type]


def msg(n: int | str, queue: str = "/queue/a", size: int = 10, producer: str | None = None) -> StoredMessage:
    return StoredMessage(f"m{n}", queue, {"n": str(n)}, b"x" * size, producer)


async def opened(path: Path, **overrides: object) -> tuple[AppendLogStore, Recovered]:
    store = AppendLogStore(path, settings(**overrides))
    return store, await store.open()


def ids(recovered: Recovered, queue: str = "/queue/a") -> list[str]:
    return [m.message_id for m in recovered.queues.get(queue, [])]


def frames(path: Path) -> list[Frame]:
    data = path.read_bytes()
    out = []
    for frame in records.iter_frames(data, 0, len(data)):
        assert isinstance(frame, Frame)
        out.append(frame)
    return out


def last_segment_with_batches(path: Path) -> Path:
    for number in reversed(list_segments(path)):
        if any(f.type is RecordType.BATCH for f in frames(path / segment_name(number))):
            return path / segment_name(number)
    raise AssertionError("no segment holds a batch")


async def test_open_write_close_reopen_across_many_segments(tmp_path: Path) -> None:
    store, recovered = await opened(tmp_path)
    assert recovered == Recovered()
    sub = DurableSubscription("c:s", "c", "s", "/topic/t", None)
    await store.write([PutSubscription(sub), AddMessage("c:s", msg("t", "/topic/t"))])
    for start in range(0, 200, 10):  # ~200 KiB: at least three 64 KiB segments
        await store.write([AddMessage("/queue/a", msg(i, size=1024)) for i in range(start, start + 10)])
    await store.remove("/queue/a", "m7")
    await store.close()
    assert len(list_segments(tmp_path)) >= 3

    store, recovered = await opened(tmp_path)
    assert ids(recovered) == [f"m{i}" for i in range(200) if i != 7]
    assert recovered.subscriptions == [sub] and ids(recovered, "c:s") == ["mt"]
    await store.write([DropSubscription("c:s")])
    await store.close()
    store, recovered = await opened(tmp_path)
    assert recovered.subscriptions == [] and "c:s" not in recovered.queues
    assert (await store.stats()).messages == 199
    await store.close()


async def test_each_open_starts_a_new_segment_sealing_the_old_one(tmp_path: Path) -> None:
    store, _ = await opened(tmp_path)
    await store.enqueue("/queue/a", msg(1))
    await store.close()
    first = list_segments(tmp_path)
    store, _ = await opened(tmp_path)
    await store.close()
    second = list_segments(tmp_path)
    assert second == first + [first[-1] + 1]
    header = frames(tmp_path / segment_name(second[-1]))[0]
    sealed = records.decode_segment_header(header.payload, "x").sealed
    assert sealed == {first[-1]: (tmp_path / segment_name(first[-1])).stat().st_size}


async def test_concurrent_writers_share_one_group(tmp_path: Path) -> None:
    store, _ = await opened(tmp_path)
    groups: list[int] = []
    store.on_commit = lambda count, _seconds: groups.append(count)
    await asyncio.gather(*(store.enqueue("/queue/a", msg(i)) for i in range(16)))
    assert sum(groups) == 16 and max(groups) > 1
    await store.close()


async def test_a_batch_that_cannot_be_encoded_fails_alone(tmp_path: Path) -> None:
    store, _ = await opened(tmp_path)
    bad = StoredMessage("bad", "/queue/a", {"n": 1}, b"", None)  # type: ignore[dict-item]
    results = await asyncio.gather(
        store.enqueue("/queue/a", msg(1)), store.enqueue("/queue/a", bad), return_exceptions=True
    )
    assert results[0] is None and isinstance(results[1], StoreError)
    await store.close()
    with pytest.raises(StoreClosed):
        await store.enqueue("/queue/a", msg(2))
    store, recovered = await opened(tmp_path)
    assert ids(recovered) == ["m1"]
    await store.close()


class FailingFile(fsio.AppendFile):
    """A real file that can be told to fail like a full disk: half the bytes land, then ENOSPC."""

    fail_appends = False
    fail_syncs = False

    def append(self, data: bytes) -> int:
        if FailingFile.fail_appends:
            os.pwrite(self._fd, data[: len(data) // 2], self.size)
            raise OSError(errno.ENOSPC, "No space left on device (injected)")
        return super().append(data)

    def sync(self) -> None:
        if FailingFile.fail_syncs:
            raise OSError(errno.EIO, "Input/output error (injected)")
        super().sync()


@pytest.fixture
def failing_files(monkeypatch: pytest.MonkeyPatch) -> type[FailingFile]:
    monkeypatch.setattr(fsio, "open_append", FailingFile)
    monkeypatch.setattr(FailingFile, "fail_appends", False)
    monkeypatch.setattr(FailingFile, "fail_syncs", False)
    return FailingFile


@pytest.mark.parametrize("fault", ["fail_appends", "fail_syncs"])
async def test_a_failed_group_is_cut_back_and_forgotten(
    tmp_path: Path, failing_files: type[FailingFile], fault: str
) -> None:
    store, _ = await opened(tmp_path)
    await store.enqueue("/queue/a", msg(1))
    segment = last_segment_with_batches(tmp_path)
    size = segment.stat().st_size
    setattr(failing_files, fault, True)
    results = await asyncio.gather(
        *(store.enqueue("/queue/a", msg(n)) for n in (2, 3)), return_exceptions=True
    )
    assert all(isinstance(r, StoreError) for r in results)
    assert segment.stat().st_size == size  # cut back to where the group began
    assert (await store.stats()).messages == 1
    setattr(failing_files, fault, False)
    await store.enqueue("/queue/a", msg(4))
    await store.close()
    store, recovered = await opened(tmp_path)
    assert ids(recovered) == ["m1", "m4"]
    await store.close()


async def test_a_torn_tail_is_truncated_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store, _ = await opened(tmp_path)
    for i in range(3):
        await store.enqueue("/queue/a", msg(i))
    await store.close()
    segment = last_segment_with_batches(tmp_path)
    good = segment.stat().st_size
    partial = records.encode_frame(RecordType.BATCH, records.encode_batch([AddMessage("/queue/a", msg(9))]))
    with open(segment, "ab") as f:
        f.write(partial[:-3])

    with caplog.at_level(logging.WARNING):
        store, recovered = await opened(tmp_path)
    assert ids(recovered) == ["m0", "m1", "m2"]
    assert f"{segment.name}@{good}" in caplog.text and f"{len(partial) - 3} bytes dropped" in caplog.text
    assert segment.stat().st_size == good
    await store.close()


async def test_a_checksum_failure_in_the_last_record_is_a_torn_tail(tmp_path: Path) -> None:
    store, _ = await opened(tmp_path)
    for i in range(3):
        await store.enqueue("/queue/a", msg(i))
    await store.close()
    segment = last_segment_with_batches(tmp_path)
    data = bytearray(segment.read_bytes())
    data[-2] ^= 0xFF
    segment.write_bytes(bytes(data))
    store, recovered = await opened(tmp_path)
    assert ids(recovered) == ["m0", "m1"]
    await store.close()


async def test_damage_before_the_tail_is_reported_with_file_and_offset(tmp_path: Path) -> None:
    store, _ = await opened(tmp_path)
    for i in range(3):
        await store.enqueue("/queue/a", msg(i))
    await store.close()
    segment = last_segment_with_batches(tmp_path)
    victim = [f for f in frames(segment) if f.type is RecordType.BATCH][0]
    data = bytearray(segment.read_bytes())
    data[victim.end - 1] ^= 0xFF
    segment.write_bytes(bytes(data))
    with pytest.raises(StoreCorrupted) as caught:
        await AppendLogStore(tmp_path, settings()).open()
    assert caught.value.where == f"{segment.name}@{victim.offset}"


async def test_damage_in_an_older_segment_is_corruption_even_at_its_end(tmp_path: Path) -> None:
    store, _ = await opened(tmp_path)
    for i in range(100):
        await store.enqueue("/queue/a", msg(i, size=1024))
    await store.close()
    first = tmp_path / segment_name(list_segments(tmp_path)[0])
    data = bytearray(first.read_bytes())
    data[-1] ^= 0xFF
    first.write_bytes(bytes(data))
    with pytest.raises(StoreCorrupted, match=first.name):
        await AppendLogStore(tmp_path, settings()).open()


async def test_a_last_segment_without_a_header_is_discarded(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store, _ = await opened(tmp_path)
    await store.enqueue("/queue/a", msg(1))
    await store.close()
    torn = tmp_path / segment_name(list_segments(tmp_path)[-1] + 1)
    torn.write_bytes(b"\x01\x02\x03")  # a crash while rotating
    with caplog.at_level(logging.WARNING):
        store, recovered = await opened(tmp_path)
    assert ids(recovered) == ["m1"] and "torn segment header" in caplog.text and not torn.exists()
    await store.close()
    store, recovered = await opened(tmp_path)
    assert ids(recovered) == ["m1"]
    await store.close()


@pytest.mark.parametrize("policy", ["periodic", "never"])
async def test_relaxed_sync_policies_still_persist_on_close(tmp_path: Path, policy: str) -> None:
    store, _ = await opened(tmp_path, sync=policy, sync_interval=0.02)
    await store.enqueue("/queue/a", msg(1))
    await asyncio.sleep(0.05)
    await store.enqueue("/queue/a", msg(2))
    await store.close()
    store, recovered = await opened(tmp_path)
    assert ids(recovered) == ["m1", "m2"]
    await store.close()
