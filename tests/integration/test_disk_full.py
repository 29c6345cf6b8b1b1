"""Disk full under a running broker: the SEND gets ERROR (no RECEIPT), others carry on, data intact.

The real-process tests mount a small tmpfs: at the store usage limit SENDs are held, then refused
with an ERROR naming the limit, and pass again once consumers free space; on a disk that really
fills, the SEND that meets ENOSPC is refused, and a broker killed on that full disk restarts.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import errno
import os
import time
import urllib.request
from pathlib import Path

import pytest

from config.model import StoreSettings
from stores.registry import store_class
from stores.usage import store_bytes
from tests.helpers.cluster import free_port
from tests.helpers.daemon import daemon
from tests.helpers.faultfs import FaultFS
from tests.helpers.server import BrokerThread
from tests.helpers.stomppy import connect, drain, send_receipted
from tests.helpers.tmpfs import fill, free_bytes, small_tmpfs


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


# -- real processes on a real full disk (a small tmpfs) ----------------------------------------------

HOST = "127.0.0.1"
LISTENING = r"STOMP connector listening on"


def write_config(mnt: Path, kind: str, port: int, metrics_port: int, store: dict[str, object]) -> Path:
    lines = [f'name = "disk-{kind}"', f'data_dir = "{mnt / "data"}"', f'connectors = ["tcp://{HOST}:{port}"]',
             f"metrics_port = {metrics_port}", "[store]", f'type = "{kind}"']
    lines += [f"{key} = {value!r}".replace("'", '"') for key, value in store.items()]
    path = mnt.parent / f"{kind}.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def metric(port: int, name: str) -> float:
    text = urllib.request.urlopen(f"http://{HOST}:{port}/metrics", timeout=5).read().decode()
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics:\n{text}")


def poll(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(0.2)
    raise AssertionError(f"not within {timeout:g} s: {what}")


def sends_again() -> bool:
    """One persistent SEND on a new connection: receipted (True) or refused at the limit (False)."""
    conn, events = connect(HOST, PORTS["stomp"])
    try:
        conn.send("/queue/q", "again", headers={"persistent": "true"}, receipt="r-again")
        return events.wait_receipt("r-again", 10.0)
    finally:
        with contextlib.suppress(Exception):
            conn.disconnect()


PORTS: dict[str, int] = {}


@pytest.mark.parametrize("kind", ["journal", "appendlog", "leveldb"])
def test_at_the_limit_sends_wait_then_fail_and_pass_again_once_consumed(tmp_path, kind):
    with small_tmpfs(tmp_path / "mnt", 64) as mnt:
        PORTS["stomp"], metrics_port = free_port(), free_port()
        config = write_config(mnt, kind, PORTS["stomp"], metrics_port, {
            "usage_limit": "8mb", "usage_timeout": 1.0, "min_free": "1mb", "reserve": "1mb",
            "journal_max_file_size": 256 * 1024, "appendlog_segment_size": 256 * 1024,
            "cleanup_interval": 600.0,  # so that space comes back because of the limit, not a timer
        })
        exercise_the_limit(["--config", str(config)], {}, mnt / "data" / kind, metrics_port)


def test_activemq_xml_store_usage_sets_the_limit_and_the_wait(tmp_path):
    with small_tmpfs(tmp_path / "mnt", 64) as mnt:
        PORTS["stomp"], metrics_port = free_port(), free_port()
        config = mnt.parent / "activemq.xml"
        config.write_text(f"""<beans><broker xmlns="http://activemq.apache.org/schema/core" brokerName="x">
          <persistenceAdapter><kahaDB directory="{mnt / 'data'}" journalMaxFileLength="256kb"
              cleanupInterval="600000"/></persistenceAdapter>
          <systemUsage><systemUsage sendFailIfNoSpaceAfterTimeout="1000">
            <memoryUsage><memoryUsage percentOfJvmHeap="70"/></memoryUsage>
            <storeUsage><storeUsage limit="8 mb"/></storeUsage>
          </systemUsage></systemUsage></broker></beans>""")
        args = ["--config", str(config), "--connector", f"tcp://{HOST}:{PORTS['stomp']}",
                "--metrics-port", str(metrics_port)]
        env = {"BATONMQ_STORE__MIN_FREE": "1mb", "BATONMQ_STORE__RESERVE": "1mb"}
        exercise_the_limit(args, env, mnt / "data" / "journal", metrics_port)


def exercise_the_limit(args: list[str], env: dict[str, str], store_dir: Path, metrics_port: int) -> None:
    """Fill to the 8 MiB limit (1 s wait), drain, and see sends pass again with the files gone."""
    limit = 8 * 1024 * 1024
    with daemon(args, env) as broker:
        broker.wait_for(LISTENING, 30)
        conn, events = connect(HOST, PORTS["stomp"])
        receipted, held = [], 0.0
        for i in range(2000):
            padding = base64.b64encode(os.urandom(12 * 1024)).decode()  # 16 KiB LevelDB cannot compress
            started = time.monotonic()
            conn.send("/queue/q", f"{i:05d}{padding}", headers={"persistent": "true"}, receipt=f"r-{i}")
            if not events.wait_receipt(f"r-{i}", 15.0):
                held = time.monotonic() - started
                break
            receipted.append(f"{i:05d}")
        assert 100 < len(receipted) < 2000, len(receipted)
        # Held for store.usage_timeout, then an ERROR that names the limit; nothing acknowledged.
        assert events.errors == ["store full"], events.errors
        assert "store.usage_limit" in events.error_bodies[0] and "8.0 MiB" in events.error_bodies[0]
        assert 0.9 <= held < 10, held  # store.usage_timeout is 1 s here (the default is 30)
        assert metric(metrics_port, "batonmq_store_usage_limit_bytes") == limit
        assert metric(metrics_port, "batonmq_store_full") == 1
        assert metric(metrics_port, "batonmq_store_full_refusals_total") >= 1
        assert metric(metrics_port, "batonmq_store_usage_bytes") < limit * 1.5

        drained = [f.body[:5] for f in drain(HOST, PORTS["stomp"], "/queue/q", idle=2.0)]
        assert drained == receipted  # all of them, in order, none twice
        # Space is reclaimed (files deleted, compacted) and a SEND passes again, no restart.
        poll(sends_again, 60, "a persistent SEND receipted again after the queue was drained")
        assert metric(metrics_port, "batonmq_store_full") == 0
        assert store_bytes(store_dir) < limit / 2, sorted(os.listdir(store_dir))
        assert broker.proc.poll() is None
        assert broker.stop() == 0


@pytest.mark.parametrize("kind", ["journal", "appendlog", "leveldb"])
def test_disk_really_full_no_receipt_then_killed_and_restarted_on_the_full_disk(tmp_path, kind):
    with small_tmpfs(tmp_path / "mnt", 32) as mnt:
        PORTS["stomp"], metrics_port = free_port(), free_port()
        reserve_size = 8 * 1024 * 1024  # LevelDB writes its replayed log as a table when it opens
        config = write_config(mnt, kind, PORTS["stomp"], metrics_port, {
            "usage_limit": "1gb",  # more than the disk: the disk fills first
            "min_free": 0, "reserve": reserve_size, "usage_timeout": 1.0,
        })
        reserve = mnt / "data" / "reserve"
        with daemon(["--config", str(config)]) as first:
            first.wait_for(LISTENING, 30)
            poll(lambda: reserve.exists() and reserve.stat().st_size == reserve_size, 20, "reserve allocated")
            kept = [f"keep-{i}" for i in range(20)]
            assert send_receipted(HOST, PORTS["stomp"], "/queue/q", kept) == kept
            bystander, bystander_events = connect(HOST, PORTS["stomp"])

            filler = fill(mnt)
            assert free_bytes(mnt) < 64 * 1024
            conn, events = connect(HOST, PORTS["stomp"])
            conn.send("/queue/q", "r" * 256 * 1024, headers={"persistent": "true"}, receipt="r-full")
            assert not events.wait_receipt("r-full", 5.0)  # never acknowledged: it was not stored
            poll(lambda: events.errors, 10, "an ERROR for the SEND that hit ENOSPC")
            assert events.errors == ["message not persisted"], events.errors
            # Another client is still served: it gets a stored message (not acked: it comes back).
            bystander.subscribe("/queue/q", id="b", ack="client-individual")
            first_message = bystander_events.messages.get(timeout=10)
            assert first_message.body == "keep-0"
            first.kill()  # kill -9 while the disk is full

        assert free_bytes(mnt) < 64 * 1024
        with daemon(["--config", str(config)]) as second:
            # It takes the lock, writes its epoch and the store's first record, and serves.
            second.wait_for(LISTENING, 30)
            assert [f.body for f in drain(HOST, PORTS["stomp"], "/queue/q", idle=2.0)] == kept
            filler.unlink()
            poll(sends_again, 30, "a persistent SEND receipted once the disk has room")
            poll(lambda: reserve.exists() and reserve.stat().st_size == reserve_size, 20, "reserve re-made")
            assert second.stop() == 0
