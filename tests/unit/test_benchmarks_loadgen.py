"""The load generator against the sink: frames it builds, bounded runs, and a multi-process smoke run."""

import asyncio
import subprocess
import sys
import time

import pytest

from benchmarks.link import SendTemplate, StompLink, latency_ms
from benchmarks.loadgen import Job, WorkerResult, consume, produce, run_job, run_jobs, spread, subscribe
from benchmarks.sink import serve
from transports.stomp import StompParser


def test_send_template_builds_valid_frames():
    template = SendTemplate("/queue/a:b", 100, persistent=True)
    parser = StompParser()
    parser.feed(template.frame(7, "r7", "run-7") + template.frame(8))
    first, second = parser.next_frame(), parser.next_frame()
    assert first.command == "SEND" and len(first.body) == 100 and b"\0" not in first.body
    assert first.headers["destination"] == "/queue/a:b"  # escaped by encode(), unescaped by the parser
    assert first.headers["persistent"] == "true"
    assert first.headers["bench-seq"] == "7" and first.headers["receipt"] == "r7"
    assert first.headers["batonmq.producer-id"] == "run-7"
    assert "receipt" not in second.headers and second.headers["bench-seq"] == "8"
    assert 0 <= latency_ms(second) < 10_000
    assert "persistent" not in _parse(SendTemplate("/topic/t", 0, persistent=False).frame(0)).headers


def _parse(data):
    parser = StompParser()
    parser.feed(data)
    return parser.next_frame()


def test_spread_divides_connections_evenly():
    job = Job("produce", "h", 1, "/queue/q", 10)
    assert [j.connections for j in spread(job, 16, 4)] == [4, 4, 4, 4]
    assert [j.connections for j in spread(job, 5, 3)] == [2, 2, 1]
    assert [j.connections for j in spread(job, 1, 4)] == [1]


async def _sink(flood=False):
    server = await serve("127.0.0.1", 0, flood=flood)
    return server, server.sockets[0].getsockname()[1]


async def test_receipted_producer_is_bounded_by_time():
    server, port = await _sink()
    try:
        job = Job("produce", "127.0.0.1", port, "/queue/x", count=10**9, window=1, time_limit=1.0)
        began = time.monotonic()
        result = await run_job(job, lambda: None)
        assert time.monotonic() - began < 5
        assert not result.errors and result.count > 100
        assert len(result.latencies) == result.count and min(result.latencies) > 0
    finally:
        server.close()


async def test_pipelined_producer_sends_all_with_one_final_receipt():
    server, port = await _sink()
    try:
        job = Job("produce", "127.0.0.1", port, "/queue/x", count=5000, window=0, connections=2)
        result = await run_job(job, lambda: None)
        assert not result.errors and result.count == 10_000 and result.latencies == []
    finally:
        server.close()


@pytest.mark.parametrize("ack", ["auto", "client-individual"])
async def test_consumer_counts_flooded_messages(ack):
    server, port = await _sink(flood=True)
    try:
        job = Job("consume", "127.0.0.1", port, "/queue/f", count=3000, ack=ack)
        result = await run_job(job, lambda: None)
        assert not result.errors and result.count == 3000
    finally:
        server.close()


async def test_forwarded_messages_carry_end_to_end_latency():
    server, port = await _sink()
    consumer_link = await StompLink.open("127.0.0.1", port)
    producer_link = await StompLink.open("127.0.0.1", port)
    try:
        sub = Job("consume", "127.0.0.1", port, "/topic/t", count=200, time_limit=5.0)
        await subscribe(consumer_link, sub, "0")
        received = WorkerResult("consume")
        consuming = asyncio.ensure_future(consume(consumer_link, sub, time.monotonic() + 5, received))
        sent = WorkerResult("produce")
        pub = Job("produce", "127.0.0.1", port, "/topic/t", count=200, window=10)
        await produce(producer_link, pub, time.monotonic() + 5, sent)
        await asyncio.wait_for(consuming, 5)
        assert sent.count == 200 and received.count == 200
        assert len(received.latencies) == 200 and all(0 <= x < 5000 for x in received.latencies)
    finally:
        for link in (consumer_link, producer_link):
            await link.disconnect()
        server.close()


def test_worker_processes_against_the_sink_process():
    sink = subprocess.Popen([sys.executable, "-m", "benchmarks.sink", "--port", "0"],
                            stdout=subprocess.PIPE, text=True)
    try:
        _, host, port = sink.stdout.readline().split()
        job = Job("produce", host, int(port), "/queue/smoke", count=10**9, window=1, time_limit=1.0)
        summaries = run_jobs(spread(job, 2, 2), ready_timeout=30)
        produced = summaries["produce"]
        assert produced.errors == []
        assert produced.count > 100 and 0.5 < produced.elapsed < 5
        assert produced.rate > 0 and produced.latency_p50 <= produced.latency_p99
    finally:
        sink.terminate()
        sink.wait(10)
        sink.stdout.close()
