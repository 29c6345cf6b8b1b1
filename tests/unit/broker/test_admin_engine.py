"""broker/engine/admin.py over a real store, and STOMP browsing under flow control (MemConn paused)."""

from __future__ import annotations

from pathlib import Path

import pytest

from broker.engine import admin
from broker.engine.admin import AdminError
from tests.unit.broker.memconn import Client, make_broker
from tests.unit.broker.test_persistence import SwitchFence, open_broker, reopen, shutdown


async def send(client: Client, destination: str, count: int, **headers: str) -> None:
    for i in range(count):
        await client.frame("SEND", f"{destination} {i}".encode(), destination=destination, receipt=f"s{i}",
                           **headers)
    await client.settle()


async def test_browse_pages_in_delivery_order_across_priorities() -> None:
    broker = make_broker()
    client = Client(broker)
    await client.connect()
    await send(client, "/queue/p", 3, priority="1")
    await send(client, "/queue/p", 2, priority="8")
    queue = admin.queue_of(broker, "/queue/p")
    bodies = [m.body.decode() for m in await admin.browse(queue, 0, 10)]
    assert bodies == ["/queue/p 0", "/queue/p 1", "/queue/p 0", "/queue/p 1", "/queue/p 2"]
    assert [m.priority for m in await admin.browse(queue, 1, 2)] == [8, 1]
    assert await admin.browse(queue, 5, 10) == [] and queue.depth == 5
    with pytest.raises(AdminError) as refused:
        await admin.browse(queue, 0, admin.MAX_BROWSE + 1)
    assert refused.value.status == 400
    with pytest.raises(AdminError) as missing:
        admin.queue_of(broker, "/queue/none")
    assert missing.value.status == 404


async def test_a_browser_waits_for_a_full_socket_and_resumes() -> None:
    broker = make_broker()
    client, browser = Client(broker), Client(broker)
    await client.connect()
    await browser.connect()
    await send(client, "/queue/b", 3)
    browser.conn.pause()
    await browser.frame("SUBSCRIBE", destination="/queue/b", id="x", browser="true")
    assert browser.messages() == []  # nothing written while the socket is full
    browser.conn.resume()
    frames = browser.messages()
    assert [f.body for f in frames[:3]] == [b"/queue/b 0", b"/queue/b 1", b"/queue/b 2"]
    assert frames[3].headers == {"subscription": "x", "browser": "end", "destination": "/queue/b",
                                 "message-id": "0"}
    assert admin.queue_of(broker, "/queue/b").depth == 3
    await browser.frame("SUBSCRIBE", destination="/queue/b", id="x", browser="true")
    assert browser.conn.errors() == ["duplicate subscription"]


async def test_a_failed_move_puts_every_message_back(tmp_path: Path) -> None:
    fence = SwitchFence()
    broker, store = await open_broker(tmp_path, fence)
    client = Client(broker)
    await client.connect()
    await send(client, "/queue/src", 4, persistent="true")
    source = admin.queue_of(broker, "/queue/src")
    ids = [m.message_id for m in source.messages()]
    fence.lost = True  # the write fails at its fence check: the master lost the lock meanwhile
    with pytest.raises(AdminError) as failed:
        await admin.move(broker, source, "/queue/dst")
    assert failed.value.status == 503
    assert [m.body for m in source.messages()] == [f"/queue/src {i}".encode() for i in range(4)]
    assert broker.destinations.queues["/queue/dst"].depth == 0
    await shutdown(broker, store)
    # The fence is checked after the sync: the write may be on disk though unacknowledged. Being
    # one write, it is there whole or not at all: each message in exactly one of the two queues.
    recovered = await reopen(tmp_path)
    stored = [m.message_id for name in ("/queue/src", "/queue/dst") for m in recovered.queues.get(name, [])]
    assert sorted(stored) == sorted(ids)
    assert len(recovered.queues.get("/queue/src", [])) in (0, 4)


async def test_move_purge_remove_are_in_the_store(tmp_path: Path) -> None:
    broker, store = await open_broker(tmp_path)
    client = Client(broker)
    await client.connect()
    await send(client, "/queue/a", 5, persistent="true")
    await send(client, "/queue/b", 2)  # not persistent: moved in memory only
    a = admin.queue_of(broker, "/queue/a")
    ids = [m.message_id for m in a.messages()]
    moved = await admin.move(broker, a, "/queue/c", ids=ids[:2])
    assert (moved.moved, moved.skipped, moved.targets) == (2, 0, {"/queue/c": 2})
    await admin.remove(broker, a, ids[2])
    with pytest.raises(AdminError):
        await admin.remove(broker, a, ids[2])
    assert await admin.purge(broker, admin.queue_of(broker, "/queue/b")) == 2
    assert (a.depth, a.enqueued, a.dequeued) == (2, 5, 3)
    await shutdown(broker, store)
    recovered = await reopen(tmp_path)
    assert [m.message_id for m in recovered.queues["/queue/c"]] == ids[:2]
    assert [m.message_id for m in recovered.queues["/queue/a"]] == ids[3:]


async def test_a_large_move_goes_in_batches_each_one_write(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    broker, store = await open_broker(tmp_path)
    writes: list[int] = []
    original = broker.write

    def counting(ops, source=None):  # type: ignore[no-untyped-def]
        writes.append(len(ops))
        return original(ops, source)

    monkeypatch.setattr(broker, "write", counting)
    monkeypatch.setattr(admin, "WRITE_BYTES", 1000)  # each message is ~300 bytes: three per write
    client = Client(broker)
    await client.connect()
    await send(client, "/queue/big", 10, persistent="true")
    writes.clear()
    moved = await admin.move(broker, admin.queue_of(broker, "/queue/big"), "/queue/there")
    assert moved.moved == 10 and writes == [6, 6, 6, 2]  # a RemoveMessage and an AddMessage each
    await shutdown(broker, store)
    recovered = await reopen(tmp_path)
    assert len(recovered.queues["/queue/there"]) == 10 and not recovered.queues.get("/queue/big")
