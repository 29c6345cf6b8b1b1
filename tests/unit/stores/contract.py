"""The store contract suite: every store passes these tests unchanged (see stores/base.py).

`StoreContract` is subclassed once per store in test_contract.py (coilmq's shape: one suite,
one subclass per implementation). The helpers here are shared with the stateful, crash and
fault-injection tests.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib.util
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from config.model import StoreSettings
from stores.base import (
    AddMessage,
    DropSubscription,
    DurableSubscription,
    Fence,
    PutSubscription,
    Recovered,
    RemoveMessage,
    Store,
    StoreClosed,
    StoredMessage,
    StoreMismatch,
)
from stores.registry import STORES, create_store

STORE_KINDS = ["journal", "leveldb", "appendlog"]
FILE_STORE_KINDS = ["journal", "appendlog"]  # the stores that write through stores.fsio


def require_store(kind: str) -> None:
    """Skip while a store's module has not been written yet; a module that exists but fails to
    import is an error, not a skip."""
    module = STORES[kind].partition(":")[0]
    try:
        spec = importlib.util.find_spec(module)
    except ModuleNotFoundError:
        spec = None
    if spec is None:
        pytest.skip(f"store {kind!r}: module {module} does not exist yet")


def message(
    message_id: str,
    destination: str = "/queue/a",
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    producer_id: str | None = None,
) -> StoredMessage:
    return StoredMessage(
        message_id=message_id,
        destination=destination,
        headers={"persistent": "true"} if headers is None else headers,
        body=f"body of {message_id}".encode() if body is None else body,
        producer_id=producer_id,
    )


def as_model(recovered: Recovered) -> dict[str, list[StoredMessage]]:
    """Queues with at least one message: whether a store reports empty queues is its own business."""
    return {queue: list(messages) for queue, messages in recovered.queues.items() if messages}


def ids(recovered: Recovered, queue: str) -> list[str]:
    return [m.message_id for m in recovered.queues.get(queue, [])]


def settings_for(kind: str, **overrides: object) -> StoreSettings:
    # Long background intervals: tests decide when things happen, not a timer.
    values: dict[str, object] = {"type": kind, "checkpoint_interval": 60.0, "cleanup_interval": 60.0}
    values.update(overrides)
    return StoreSettings.model_validate(values)


@asynccontextmanager
async def opened(
    kind: str, data_dir: Path, fence: Fence | None = None, **overrides: object
) -> AsyncIterator[tuple[Store, Recovered]]:
    """Build through the registry (so the marker is exercised), open, and always close."""
    store = create_store(data_dir, settings_for(kind, **overrides), fence)
    async with asyncio.timeout(60):
        recovered = await store.open()
    try:
        yield store, recovered
    finally:
        async with asyncio.timeout(60):
            await store.close()


async def recover(kind: str, data_dir: Path, **overrides: object) -> Recovered:
    async with opened(kind, data_dir, None, **overrides) as (_, recovered):
        return recovered


def snapshot(directory: Path) -> dict[str, str]:
    """Relative path → sha256 of every file under `directory` (to prove nothing changed)."""
    result: dict[str, str] = {}
    for root, _, files in os.walk(directory):
        for name in files:
            path = Path(root) / name
            result[str(path.relative_to(directory))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return result


class SwitchFence(Fence):
    """A fence that starts valid and is deposed on demand, as when another master takes over."""

    epoch = 1

    def __init__(self) -> None:
        self.deposed = False
        self.checks = 0

    def check(self) -> None:
        self.checks += 1
        if self.deposed:
            raise StoreClosed("lock lost: another master holds epoch 2")


SUB = DurableSubscription(key="sub/c1/s1", client_id="c1", name="s1", destination="/topic/t")


class StoreContract:
    """Subclasses set `kind`; every test runs against a fresh temporary data directory."""

    kind: str

    @pytest.fixture(autouse=True)
    def _store_exists(self) -> None:
        require_store(self.kind)

    @pytest.fixture
    def data_dir(self, tmp_path: Path) -> Path:
        path = tmp_path / "data"
        path.mkdir()
        return path

    async def test_open_empty_recovers_nothing(self, data_dir: Path) -> None:
        recovered = await recover(self.kind, data_dir)
        assert as_model(recovered) == {}
        assert recovered.subscriptions == []
        assert recovered.producer_ids == []

    async def test_enqueued_messages_survive_reopen_in_order(self, data_dir: Path) -> None:
        sent = [message(f"m{i}") for i in range(10)]
        async with opened(self.kind, data_dir) as (store, _):
            for m in sent:
                await store.enqueue("/queue/a", m)
        assert as_model(await recover(self.kind, data_dir)) == {"/queue/a": sent}

    async def test_reopen_twice_does_not_duplicate(self, data_dir: Path) -> None:
        async with opened(self.kind, data_dir) as (store, _):
            await store.enqueue("/queue/a", message("m1"))
        await recover(self.kind, data_dir)
        async with opened(self.kind, data_dir) as (store, recovered):
            assert ids(recovered, "/queue/a") == ["m1"]
            await store.enqueue("/queue/a", message("m2"))
        assert ids(await recover(self.kind, data_dir), "/queue/a") == ["m1", "m2"]

    async def test_removed_message_is_gone_after_reopen(self, data_dir: Path) -> None:
        async with opened(self.kind, data_dir) as (store, _):
            for i in range(5):
                await store.enqueue("/queue/a", message(f"m{i}"))
            await store.remove("/queue/a", "m2")
            await store.remove("/queue/a", "m0")
        assert ids(await recover(self.kind, data_dir), "/queue/a") == ["m1", "m3", "m4"]

    async def test_mixed_batch_applies_every_op(self, data_dir: Path) -> None:
        async with opened(self.kind, data_dir) as (store, _):
            await store.write([AddMessage("/queue/a", message("old")), AddMessage("/queue/b", message("b0"))])
            await store.write(
                [
                    AddMessage("/queue/a", message("a1")),
                    RemoveMessage("/queue/a", "old"),
                    PutSubscription(SUB),
                    AddMessage(SUB.key, message("t1", destination="/topic/t")),
                    AddMessage("/queue/a", message("a2")),
                    AddMessage("/queue/b", message("gone")),
                    RemoveMessage("/queue/b", "gone"),  # added and removed in the same batch
                ]
            )
        recovered = await recover(self.kind, data_dir)
        assert {q: [m.message_id for m in ms] for q, ms in as_model(recovered).items()} == {
            "/queue/a": ["a1", "a2"],
            "/queue/b": ["b0"],
            SUB.key: ["t1"],
        }
        assert recovered.subscriptions == [SUB]

    async def test_queues_are_independent(self, data_dir: Path) -> None:
        queues = ["/queue/x", "/queue/y", "/queue/z"]
        async with opened(self.kind, data_dir) as (store, _):
            for i in range(12):
                await store.enqueue(queues[i % 3], message(f"m{i}", destination=queues[i % 3]))
            await store.remove("/queue/y", "m4")
        recovered = await recover(self.kind, data_dir)
        assert ids(recovered, "/queue/x") == ["m0", "m3", "m6", "m9"]
        assert ids(recovered, "/queue/y") == ["m1", "m7", "m10"]
        assert ids(recovered, "/queue/z") == ["m2", "m5", "m8", "m11"]

    async def test_durable_subscription_put_and_drop(self, data_dir: Path) -> None:
        other = DurableSubscription(key="sub/c2/s2", client_id="c2", name="s2", destination="/topic/u")
        async with opened(self.kind, data_dir) as (store, _):
            await store.write([PutSubscription(SUB), PutSubscription(other)])
            await store.enqueue(SUB.key, message("t1", destination="/topic/t"))
            await store.enqueue(other.key, message("u1", destination="/topic/u"))
            await store.enqueue("/queue/a", message("q1"))
        async with opened(self.kind, data_dir) as (store, recovered):
            assert set(recovered.subscriptions) == {SUB, other}
            assert ids(recovered, SUB.key) == ["t1"]
            await store.write([DropSubscription(SUB.key)])
        recovered = await recover(self.kind, data_dir)
        assert recovered.subscriptions == [other]
        assert ids(recovered, SUB.key) == []  # dropping a subscription drops its messages
        assert ids(recovered, other.key) == ["u1"]
        assert ids(recovered, "/queue/a") == ["q1"]

    async def test_put_subscription_again_replaces_it(self, data_dir: Path) -> None:
        changed = DurableSubscription(SUB.key, SUB.client_id, SUB.name, SUB.destination, selector="prio > 4")
        async with opened(self.kind, data_dir) as (store, _):
            await store.write([PutSubscription(SUB)])
            await store.write([PutSubscription(changed)])
        assert (await recover(self.kind, data_dir)).subscriptions == [changed]

    async def test_subscription_owner_survives_reopen_and_older_ones_have_none(self, data_dir: Path) -> None:
        owned = DurableSubscription("sub/c3/s3", "c3", "s3", "/topic/t", "a = 1", owner="alice")
        async with opened(self.kind, data_dir) as (store, _):
            await store.write([PutSubscription(SUB), PutSubscription(owned)])
        await recover(self.kind, data_dir)  # a second open reads what the first one checkpointed
        recovered = await recover(self.kind, data_dir)
        assert set(recovered.subscriptions) == {SUB, owned}
        assert {s.key: s.owner for s in recovered.subscriptions} == {SUB.key: None, owned.key: "alice"}

    async def test_producer_ids_window_is_bounded_and_outlives_messages(self, data_dir: Path) -> None:
        async with opened(self.kind, data_dir, duplicate_window=5) as (store, _):
            for i in range(8):
                await store.enqueue("/queue/a", message(f"m{i}", producer_id=f"p{i}"))
            await store.enqueue("/queue/a", message("anonymous"))  # no producer id: not remembered
            for i in range(8):
                await store.remove("/queue/a", f"m{i}")
        async with opened(self.kind, data_dir, duplicate_window=5) as (store, recovered):
            assert recovered.producer_ids == ["p3", "p4", "p5", "p6", "p7"]
            assert ids(recovered, "/queue/a") == ["anonymous"]
            await store.enqueue("/queue/a", message("m8", producer_id="p8"))
        assert (await recover(self.kind, data_dir, duplicate_window=5)).producer_ids == [
            "p4",
            "p5",
            "p6",
            "p7",
            "p8",
        ]

    async def test_producer_ids_disabled_with_zero_window(self, data_dir: Path) -> None:
        async with opened(self.kind, data_dir, duplicate_window=0) as (store, _):
            await store.enqueue("/queue/a", message("m1", producer_id="p1"))
        recovered = await recover(self.kind, data_dir, duplicate_window=0)
        assert recovered.producer_ids == []
        assert ids(recovered, "/queue/a") == ["m1"]

    async def test_write_after_close_raises_store_closed(self, data_dir: Path) -> None:
        async with opened(self.kind, data_dir) as (store, _):
            await store.enqueue("/queue/a", message("m1"))
        with pytest.raises(StoreClosed):
            await store.enqueue("/queue/a", message("m2"))
        assert ids(await recover(self.kind, data_dir), "/queue/a") == ["m1"]

    async def test_failing_fence_refuses_to_acknowledge(self, data_dir: Path) -> None:
        fence = SwitchFence()
        async with opened(self.kind, data_dir, fence=fence) as (store, _):
            await store.enqueue("/queue/a", message("m1"))
            assert fence.checks >= 1, "the store never checked its fence before acknowledging"
            fence.deposed = True
            with pytest.raises(StoreClosed):
                await store.enqueue("/queue/a", message("m2"))
            with pytest.raises(StoreClosed):  # once deposed, it stays closed
                await store.enqueue("/queue/a", message("m3"))
        # m2 may or may not have reached the disk (it was not acknowledged); m3 must not have.
        recovered = await recover(self.kind, data_dir)
        assert ids(recovered, "/queue/a")[0] == "m1"
        assert "m3" not in ids(recovered, "/queue/a")

    @pytest.mark.parametrize("policy", ["always", "periodic", "never"])
    async def test_sync_policies_survive_clean_close(self, data_dir: Path, policy: str) -> None:
        async with opened(self.kind, data_dir, sync=policy, sync_interval=0.05) as (store, _):
            await asyncio.gather(*(store.enqueue("/queue/a", message(f"m{i}")) for i in range(20)))
            await asyncio.sleep(0.12)  # let a periodic sync run at least once
            await store.remove("/queue/a", "m0")
        recovered = await recover(self.kind, data_dir, sync=policy, sync_interval=0.05)
        assert ids(recovered, "/queue/a") == [f"m{i}" for i in range(1, 20)]

    async def test_stats_count_messages(self, data_dir: Path) -> None:
        async with opened(self.kind, data_dir) as (store, _):
            assert (await store.stats()).messages == 0
            for i in range(5):
                await store.enqueue(f"/queue/{i % 2}", message(f"m{i}"))
            await store.remove("/queue/0", "m2")
            stats = await store.stats()
            assert stats.messages == 4
            assert stats.bytes > 0
        async with opened(self.kind, data_dir) as (store, _):
            assert (await store.stats()).messages == 4

    async def test_binary_and_large_bodies_and_odd_headers(self, data_dir: Path) -> None:
        binary = bytes(range(256)) * 4 + b"\x00\x00\n\n\x00"
        large = os.urandom(1024 * 1024)
        headers = {"persistent": "true", "odd:name": "line1\nline2\\:x", "ünï": "çødé ✓", "empty": ""}
        sent = [
            message("bin", body=binary),
            message("empty", body=b""),
            message("large", body=large, headers=headers),
            message("after", producer_id="p:1\n"),
        ]
        async with opened(self.kind, data_dir) as (store, _):
            for m in sent:
                await store.enqueue("/queue/a", m)
        assert as_model(await recover(self.kind, data_dir)) == {"/queue/a": sent}

    async def test_thousand_concurrent_writes_all_survive(self, data_dir: Path) -> None:
        sent = [message(f"m{i:04}", destination=f"/queue/{i % 4}") for i in range(1000)]
        async with opened(self.kind, data_dir) as (store, _):
            async with asyncio.timeout(60):
                await asyncio.gather(*(store.enqueue(m.destination, m) for m in sent))
        recovered = await recover(self.kind, data_dir)
        for q in range(4):
            # Each write was submitted in index order, so each queue keeps that order.
            assert ids(recovered, f"/queue/{q}") == [m.message_id for m in sent[q::4]]

    async def test_many_messages_across_small_files(self, data_dir: Path) -> None:
        # The smallest file sizes the settings allow, so records cross data files and segments;
        # one body is larger than a whole file.
        small = {"journal_max_file_size": 64 * 1024, "appendlog_segment_size": 64 * 1024}
        sent = [message(f"m{i}", body=bytes([i % 256]) * 1500) for i in range(300)]
        big = message("big", body=os.urandom(200 * 1024))
        async with opened(self.kind, data_dir, **small) as (store, _):
            for start in range(0, 300, 30):
                await store.write([AddMessage("/queue/a", m) for m in sent[start : start + 30]])
            await store.enqueue("/queue/a", big)
            await store.write([RemoveMessage("/queue/a", f"m{i}") for i in range(300) if i % 10])
        survivors = [m for i, m in enumerate(sent) if i % 10 == 0] + [big]
        async with opened(self.kind, data_dir, **small) as (store, recovered):
            assert as_model(recovered) == {"/queue/a": survivors}
            await store.remove("/queue/a", "big")
        assert as_model(await recover(self.kind, data_dir, **small)) == {"/queue/a": survivors[:-1]}

    async def test_close_while_writing(self, data_dir: Path) -> None:
        async with opened(self.kind, data_dir) as (store, _):
            writes = [asyncio.ensure_future(store.enqueue("/queue/a", message(f"m{i}"))) for i in range(200)]
            await asyncio.sleep(0)
        # close() has returned: every write has either completed or been refused.
        results = await asyncio.wait_for(asyncio.gather(*writes, return_exceptions=True), 30)
        odd = [r for r in results if r is not None and not isinstance(r, StoreClosed)]
        assert not odd, f"writes racing close() failed with {odd[:3]}"
        done = [f"m{i}" for i, r in enumerate(results) if r is None]
        assert set(done) <= set(ids(await recover(self.kind, data_dir), "/queue/a"))

    async def test_group_commit_shares_syncs(self, data_dir: Path) -> None:
        commits: list[int] = []
        store = create_store(data_dir, settings_for(self.kind))
        store.on_commit = lambda size, seconds: commits.append(size)
        await store.open()
        try:
            async with asyncio.timeout(60):
                await asyncio.gather(*(store.enqueue("/queue/a", message(f"m{i}")) for i in range(500)))
        finally:
            await store.close()
        assert sum(commits) == 500, f"on_commit reported {sum(commits)} writes in {len(commits)} commits"
        assert len(commits) < 250, f"500 concurrent writes took {len(commits)} commits: no group commit"

    async def test_registry_refuses_directory_of_another_store(self, data_dir: Path) -> None:
        async with opened(self.kind, data_dir) as (store, _):
            await store.enqueue("/queue/a", message("m1"))
        before = snapshot(data_dir)
        for other in STORE_KINDS:
            if other == self.kind:
                continue
            with pytest.raises(StoreMismatch) as raised:
                create_store(data_dir, settings_for(other))
            assert self.kind in str(raised.value) and other in str(raised.value)
            assert snapshot(data_dir) == before, f"asking for {other!r} changed the directory"
        assert ids(await recover(self.kind, data_dir), "/queue/a") == ["m1"]
