"""Disk full under a running broker: the SEND gets ERROR (no RECEIPT), others carry on, data intact."""

from __future__ import annotations

import asyncio
import errno

import pytest

from config.model import StoreSettings
from stores.registry import store_class
from tests.helpers.faultfs import FaultFS
from tests.helpers.server import BrokerThread
from tests.helpers.stomppy import connect, drain, send_receipted


@pytest.mark.parametrize("kind", ["journal", "appendlog"])
def test_enospc_refuses_the_send_then_recovers(tmp_path, monkeypatch, kind):
    fs = FaultFS().install(monkeypatch)
    store = store_class(kind)(tmp_path / kind, StoreSettings(type=kind))
    broker = BrokerThread(store=store).start()
    try:
        assert send_receipted("127.0.0.1", broker.port, "/queue/q", ["before"]) == ["before"]
        bystander, bystander_events = connect("127.0.0.1", broker.port)

        fs.fail_appends(errno.ENOSPC)
        conn, events = connect("127.0.0.1", broker.port)
        conn.send("/queue/q", "refused", headers={"persistent": "true"}, receipt="r-full")
        assert not events.wait_receipt("r-full", 2.0)
        assert any("not persisted" in error for error in events.errors), events.errors

        fs.clear_faults()
        # The other client was not disturbed, and writes succeed again once space returns.
        bystander.send("/queue/q", "after", headers={"persistent": "true"}, receipt="r-after")
        assert bystander_events.wait_receipt("r-after", 5.0)
        bystander.disconnect()
        assert [f.body for f in drain("127.0.0.1", broker.port, "/queue/q", idle=1.0)] == ["before", "after"]
    finally:
        broker.stop()
    recovered = asyncio.run(reopen(store_class(kind)(tmp_path / kind, StoreSettings(type=kind))))
    assert recovered.queues.get("/queue/q", []) == []  # both consumed; "refused" never reappears


async def reopen(store):
    try:
        return await store.open()
    finally:
        await store.close()
