"""The failover benchmark's logic on synthetic data: timeline lines, phases, delivery check, JSON shape."""

import asyncio
import importlib.util
import json
from pathlib import Path

import pytest

from benchmarks import failover
from benchmarks.brokers import BrokerProcess, parse_timeline
from benchmarks.failover_clients import Consumer, Event, Producer
from benchmarks.failover_report import (
    PHASES,
    RoundResult,
    build_document,
    check_delivery,
    render_text,
    since_kill,
)
from benchmarks.sink import serve

LINE = ("2026-11-25 14:47:59,090 INFO  batonmq.master: broker b2: timeline epoch=7 "
        "lock_taken=1000.004000 store_recovered=1000.060000 connector_bound=1000.068500")


def test_parse_timeline_line():
    timeline = parse_timeline(LINE)
    assert timeline.name == "b2" and timeline.epoch == 7
    assert (timeline.lock_taken, timeline.store_recovered, timeline.connector_bound) == (1000.004, 1000.06,
                                                                                         1000.0685)
    assert parse_timeline("broker b2: role recovering -> master (epoch 7)") is None


def test_phases_are_ms_after_the_kill():
    assert since_kill(1000.0, 1000.0685) == 68.5
    assert since_kill(1000.0, None) is None


def _broker(name, host, role, epochs):
    broker = BrokerProcess(name, host, 1, Path("/nonexistent"))
    broker.role = role
    broker.timelines = [parse_timeline(LINE.replace("b2", name).replace("epoch=7", f"epoch={e}"))
                        for e in epochs]
    return broker


def test_newest_timeline_and_observe_fill_a_round():
    killed, b2, b3 = _broker("b1", "127.0.0.2", "master", [1]), _broker("b2", "127.0.0.3", "master", [2]), \
        _broker("b3", "127.0.0.4", "slave", [])
    assert failover.newest_timeline([b2, b3], 1)[0] is b2
    assert failover.newest_timeline([b2, b3], 2) is None
    run = failover.Run.__new__(failover.Run)
    run.brokers = [killed, b2, b3]
    run.producer = Producer([], "/queue/q", 100.0, 10, "id")
    run.consumer = Consumer([], "/queue/q")
    result = RoundResult(1, "b1", "KILL", kill_time=1000.0)
    run.producer.receipts = [Event(999.9, "127.0.0.2", 0), Event(1000.2, "127.0.0.3", 1)]
    assert not run._observe(result, killed, 1)  # no message from the new master yet
    assert result.new_master == "b2" and result.epoch == 2 and result.connector_bound == 68.5
    assert result.first_receipt == pytest.approx(200.0) and result.first_message is None
    run.consumer.deliveries = [Event(1000.1, "127.0.0.2", 0), Event(1000.25, "127.0.0.3", 1),
                               Event(1000.3, "127.0.0.3", 2)]
    assert run._observe(result, killed, 1)
    assert result.first_message == pytest.approx(250.0)


def test_check_delivery_counts_lost_duplicates_and_phantoms():
    check = check_delivery(receipted=[0, 1, 2, 3], sent=5,
                           deliveries=[(0, False), (1, False), (1, True), (3, False), (3, False), (9, False)])
    assert check.lost == [2]
    assert check.duplicates == 2 and check.duplicates_redelivered == 1
    assert check.unexpected == [9]
    assert check.receipted == 4 and check.consumed == 4
    clean = check_delivery(receipted=[0, 1], deliveries=[(1, False), (0, False), (2, False)], sent=3)
    assert clean.lost == [] and clean.duplicates == 0 and clean.unexpected == []


def test_document_has_the_promised_shape():
    rounds = [RoundResult(i, "b1", "KILL", 1000.0 + i, "b2", i + 1, 4.0, 60.0 + i, 68.0 + i, 78.0 + i,
                          77.0 + i) for i in range(1, 5)]
    rounds.append(RoundResult(5, "b2", "KILL", 2000.0, timed_out=True))
    check = check_delivery([0, 1], [(0, False), (1, False), (1, True)], sent=2)
    document = build_document(rounds, check, {"cores": 2}, {"store": "journal", "brokers": 3})
    assert list(document) == ["summary", "lost", "duplicates", "rounds", "machine", "config"]
    assert list(document["summary"]) == list(PHASES)
    for phase in PHASES:
        assert list(document["summary"][phase]) == ["p50", "p90", "p99", "max"]
    assert document["summary"]["connector_bound"]["max"] == 72.0  # the timed-out round is skipped
    assert document["summary"]["lock_taken"]["p50"] == 4.0
    assert document["lost"] == 0 and document["duplicates"] == 1
    assert len(document["rounds"]) == 5 and document["rounds"][4]["timed_out"] is True
    json.dumps(document)  # serialisable as is
    text = render_text(document)
    assert "first_receipt" in text and "TIMEOUT" in text and "lost 0, duplicates 1" in text


@pytest.mark.skipif(importlib.util.find_spec("matplotlib") is not None, reason="matplotlib is installed")
def test_plot_without_matplotlib_exits_2(tmp_path, capsys):
    assert failover.main(["--rounds", "1", "--plot", str(tmp_path / "p.png")]) == 2
    assert "matplotlib" in capsys.readouterr().err


async def test_clients_skip_dead_addresses_and_record_events():
    server = await serve("127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    dead = await serve("127.0.0.1", 0)
    dead_port = dead.sockets[0].getsockname()[1]
    dead.close()
    await dead.wait_closed()  # nothing listens there now: connection refused, as at a slave
    addresses = [("127.0.0.1", dead_port), ("127.0.0.1", port)]
    producer = Producer(addresses, "/queue/q", rate=200.0, size=64, run_id="t")
    consumer = Consumer(addresses, "/queue/q")
    stop_p, stop_c = asyncio.Event(), asyncio.Event()
    consuming = asyncio.ensure_future(consumer.run(stop_c))
    await asyncio.sleep(0.2)  # subscribed before the first send: the sink keeps nothing
    producing = asyncio.ensure_future(producer.run(stop_p))
    await asyncio.sleep(0.5)
    stop_p.set()
    await asyncio.wait_for(producing, 5)
    await asyncio.sleep(0.1)
    stop_c.set()
    await asyncio.wait_for(consuming, 5)
    server.close()
    assert 20 < len(producer.receipts) <= 200 and producer.connects == 1
    assert [e.seq for e in producer.receipts] == list(range(len(producer.receipts)))
    check = check_delivery((e.seq for e in producer.receipts), ((e.seq, False) for e in consumer.deliveries),
                           producer.sent)
    assert check.lost == [] and check.duplicates == 0 and check.unexpected == []
    assert producer.first_receipt(producer.receipts[3].at, "127.0.0.1") == producer.receipts[3]
