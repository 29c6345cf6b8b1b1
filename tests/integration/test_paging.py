"""The store cursor in a real broker process (`--cursor-window 64kb`, journal store): backlogs
far beyond the window go through the store and come back complete, once each, in order."""

from __future__ import annotations

import asyncio
import re
import time
import urllib.request
from pathlib import Path

from benchmarks.brokers import memory_kib
from benchmarks.link import SendTemplate, StompLink
from tests.helpers.cluster import BrokerProc, free_port
from transports.stomp.frame import Frame

HOST = "127.0.0.1"


def start(tmp_path: Path, port: int, metrics: int | None = None) -> BrokerProc:
    extra = ("--cursor-window", "64kb")
    if metrics is not None:
        extra += ("--metrics-port", str(metrics), "--metrics-host", HOST)
    broker = BrokerProc("p1", HOST, port, tmp_path / "data", extra=extra)
    broker.start()
    assert broker.wait_role("master", 20), broker.log_text()
    return broker


def paged(metrics: int) -> int:
    """batonmq_destination_paged summed over destinations, from /metrics."""
    with urllib.request.urlopen(f"http://{HOST}:{metrics}/metrics", timeout=5) as reply:
        text = reply.read().decode()
    values = re.findall(r"^batonmq_destination_paged(?:\{[^}]*\})? (\S+)$", text, re.MULTILINE)
    assert values, [line for line in text.splitlines() if "paged" in line]
    return sum(int(float(value)) for value in values)


async def produce(port: int, destination: str, start_seq: int, count: int, size: int = 1024) -> None:
    link = await StompLink.open(HOST, port)
    template = SendTemplate(destination, size, persistent=True)
    for seq in range(start_seq, start_seq + count):
        receipt = "last" if seq == start_seq + count - 1 else None
        link.write(template.frame(seq, receipt=receipt))
        await link.drain_if_full()
    await link.wait_receipt("last", 60)
    await link.disconnect()


async def consume(port: int, destination: str, count: int, idle: float = 5.0) -> list[Frame]:
    link = await StompLink.open(HOST, port)
    link.send(Frame("SUBSCRIBE", {"destination": destination, "id": "s", "ack": "client-individual",
                                  "activemq.prefetchSize": "200"}))
    frames: list[Frame] = []
    while len(frames) < count:
        try:
            frame = await link.next_frame(idle)
        except Exception:
            break
        if frame is None or frame.command != "MESSAGE":
            break
        frames.append(frame)
        link.ack(frame.headers["ack"])
    await link.disconnect()
    return frames


def seqs(frames: list[Frame]) -> list[int]:
    return [int(f.headers["bench-seq"]) for f in frames]


def test_backlog_beyond_the_window_drains_in_order_and_survives_a_restart(tmp_path: Path) -> None:
    port, metrics = free_port(), free_port()
    broker = start(tmp_path, port, metrics)
    try:
        asyncio.run(produce(port, "/queue/backlog", 0, 20_000))
        assert paged(metrics) > 19_000  # a 64 KiB window holds some 50 of them
        assert broker.proc is not None
        rss = memory_kib(broker.proc.pid).get("VmRSS", 0)
        frames = asyncio.run(consume(port, "/queue/backlog", 5_000))
        assert seqs(frames) == list(range(5_000))
        assert not any(f.headers.get("redelivered") == "true" for f in frames)
        broker.stop()
        broker = start(tmp_path, port)
        frames = asyncio.run(consume(port, "/queue/backlog", 15_000))
        assert seqs(frames) == list(range(5_000, 20_000))
        assert all(f.headers.get("redelivered") == "true" for f in frames)  # stored before this open
        assert rss < 400 * 1024, rss
    finally:
        broker.stop()


def test_concurrent_producers_and_a_consumer_lose_nothing_and_duplicate_nothing(tmp_path: Path) -> None:
    port = free_port()
    broker = start(tmp_path, port)
    per, producers = 4_000, 4

    async def run() -> list[Frame]:
        consumer = asyncio.ensure_future(consume(port, "/queue/busy", per * producers, idle=10))
        await asyncio.sleep(0.2)
        await asyncio.gather(*(produce(port, "/queue/busy", k * 1_000_000, per, 512)
                               for k in range(producers)))
        return await consumer

    try:
        started = time.monotonic()
        frames = asyncio.run(run())
        got = seqs(frames)
        assert len(got) == len(set(got)) == per * producers, (len(got), time.monotonic() - started)
        for k in range(producers):
            mine = [s for s in got if s // 1_000_000 == k]
            assert mine == list(range(k * 1_000_000, k * 1_000_000 + per))
        assert not any(f.headers.get("redelivered") == "true" for f in frames)
    finally:
        broker.stop()
