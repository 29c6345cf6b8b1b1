"""The failover client (transports.client) against real brokers.

Part one: three broker processes on 127.0.0.2-4 sharing one data directory; the master is
kill -9ed three times while a producer and a consumer run through our failover URL (design.md
section 7: every receipted message is consumed, nothing unsent appears, no send-side duplicates,
consumer-side duplicates only when flagged redelivered). Also the CLI tools across a kill -9.

Part two: faster cases on one in-process broker (whose connections we can drop at will) and on
ports where nothing listens: timeout, maxReconnectAttempts, transactions, stale acks,
re-subscription, resends; and on a scripted peer: how ERROR frames are judged.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from tests.helpers.cluster import HOSTS, BrokerProc, wait_for_single_master
from tests.helpers.scriptedpeer import accept, frame, peer, read_frame
from tests.helpers.server import BrokerThread, running_broker
from transports.client import (
    ClientError,
    ClientTimeout,
    ConnectFailed,
    ConnectionEvent,
    ConnectionState,
    ReconnectFailed,
    TransactionRolledBack,
    connect,
)
from transports.stomp.commands import PRODUCER_ID_HEADER

pytestmark = pytest.mark.ha

ROOT = Path(__file__).resolve().parents[2]
FAST = "initialReconnectDelay=10&maxReconnectDelay=200"
# Measured figures, printed at the end of a run with -s (kill -9 -> CONNECTED as the client saw it).
OUTAGES: list[float] = []


def failover_url(port: int, options: str = FAST, hosts: tuple[str, ...] = HOSTS) -> str:
    return "failover:(" + ",".join(f"tcp://{h}:{port}" for h in hosts) + ")?" + options


def dead_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def wait_until(predicate, timeout: float, step: float = 0.01) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(step)


async def kill_master(brokers: list[BrokerProc]) -> None:
    """kill -9 the current master, then start it again as a slave (three brokers stay up)."""
    master = await asyncio.to_thread(wait_for_single_master, brokers, 20)
    master.signal(signal.SIGKILL)
    await asyncio.to_thread(master.wait_exit, 10)
    master.start()


def outage_recorder(into: list[float]):
    lost: list[float] = []

    def record(event: ConnectionEvent) -> None:
        if event.state is ConnectionState.DISCONNECTED:
            lost[:] = [event.at]
        elif event.state is ConnectionState.CONNECTED and lost:
            into.append(event.at - lost.pop())

    return record


# -- part one: real broker processes, kill -9 ---------------------------------------------------


@pytest.mark.parametrize("store", ["journal", "leveldb", "appendlog"])
async def test_producer_and_consumer_survive_three_kills_of_the_master(cluster, store):
    brokers = cluster(3, store=store)
    await asyncio.to_thread(wait_for_single_master, brokers, 20)
    url, dest, total = failover_url(brokers[0].port), f"/queue/orders-{store}", 400
    receipted: list[str] = []  # producer ids whose send returned after its RECEIPT
    unawaited: list[str] = []  # tracked persistent sends made with receipt=False
    seen: list[tuple[str, str, bool, bytes]] = []  # (producer id, message id, redelivered, body)
    producer_done = asyncio.Event()
    outages: list[float] = []

    async def produce() -> None:
        async with connect(url) as client:
            client.on_event(outage_recorder(outages))
            for seq in range(total):
                awaited = seq % 3 != 0  # every third send is pipelined, tracked by the client all the same
                pid = await client.send(dest, f"{store}-{seq}", persistent=True, receipt=awaited)
                (receipted if awaited else unawaited).append(pid)
                await asyncio.sleep(0.003)
            await client.disconnect(timeout=30)  # returns only once every tracked send was receipted
            stats = client.stats
        receipted.extend(unawaited)
        assert stats.reconnects == 3 and stats.receipted == total and stats.refused == 0
        producer_done.set()

    async def consume() -> None:
        async with connect(url) as client:
            sub = await client.subscribe(dest, ack="client-individual")
            unique: set[str] = set()
            while len(unique) < total:
                message = await sub.get(10)
                if message is None:
                    break
                pid = message.headers[PRODUCER_ID_HEADER]
                seen.append((pid, message.message_id, message.redelivered, message.body))
                unique.add(pid)
                await message.ack()

    async def kill_three_times() -> None:
        for fraction in (0.25, 0.5, 0.75):
            await wait_until(lambda f=fraction: len(receipted) >= total * f * 2 / 3, 60)
            await kill_master(brokers)

    started = time.monotonic()
    await asyncio.gather(produce(), consume(), kill_three_times())
    elapsed = time.monotonic() - started
    OUTAGES.extend(outages)

    copies = Counter(pid for pid, *_ in seen)
    message_ids = defaultdict(set)
    for pid, message_id, _, _ in seen:
        message_ids[pid].add(message_id)
    assert set(receipted) <= set(copies), f"lost: {sorted(set(receipted) - set(copies))[:5]}"
    assert {body for *_, body in seen} <= {f"{store}-{seq}".encode() for seq in range(total)}
    assert len(copies) == total
    send_side = [pid for pid, ids in message_ids.items() if len(ids) > 1]
    assert send_side == [], "the broker stored a resent SEND twice"
    firsts: set[str] = set()
    unflagged = []
    for pid, _, redelivered, _ in seen:
        if pid in firsts and not redelivered:
            unflagged.append(pid)
        firsts.add(pid)
    assert unflagged == []
    print(f"\n{store}: {total} msgs in {elapsed:.2f}s ({total / elapsed:.0f} msg/s) through 3 kills; "
          f"client outages {[round(o, 3) for o in outages]}s; consumer duplicates "
          f"{len(seen) - total} (all redelivered)")


def batonmq(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "broker", *args], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen[str], timeout: float = 60) -> tuple[dict, str]:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"timed out; stderr:\n{err}") from None
    return json.loads(out.strip().splitlines()[-1]), err


async def cli_across_a_kill(brokers: list[BrokerProc], url: str, destination: str, count: int,
                            rate: int, *extra: str) -> tuple[dict, str, dict, str]:
    """`batonmq produce` and `consume` over `url` while the master is killed once: their JSON and stderr."""
    producer = batonmq("produce", "--url", url, "--destination", destination, "--count", str(count),
                       "--persistent", "--receipts", "--rate", str(rate), *extra, "--json")
    consumer = batonmq("consume", "--url", url, "--destination", destination, "--count", str(count),
                       "--ack", "client-individual", "--timeout", "15", *extra, "--json")
    try:
        # Both are connected and part-way through their sends, even when starting a Python process
        # takes a second or more on a busy machine.
        await asyncio.sleep(2.0)
        await kill_master(brokers)
        produced, produce_err = await asyncio.to_thread(finish, producer)
        consumed, consume_err = await asyncio.to_thread(finish, consumer)
    finally:
        for proc in (producer, consumer):
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            proc.wait(5)
    return produced, produce_err, consumed, consume_err


async def test_cli_produce_and_consume_keep_going_across_a_kill(cluster):
    brokers = cluster(3)
    await asyncio.to_thread(wait_for_single_master, brokers, 20)
    count = 600
    produced, produce_err, consumed, consume_err = await cli_across_a_kill(
        brokers, failover_url(brokers[0].port), "/queue/cli", count, 150)
    assert produced["ok"] and produced["receipted"] == count and produced["reconnects"] == 1, produce_err
    assert "produce: reconnected: connected to tcp://127.0.0." in produce_err
    assert consumed["ok"] and consumed["unique"] == count and consumed["reconnects"] == 1, consume_err
    assert consumed["duplicates_unflagged"] == 0
    assert consumed["duplicates"] == consumed["duplicates_redelivered"]
    assert "consume: connection lost" in consume_err


# -- part two: one in-process broker, dead ports, a scripted peer ---------------------------------


@pytest.fixture
def broker():
    with running_broker() as thread:
        yield thread


async def drop_connections(broker: BrokerThread) -> None:
    await asyncio.to_thread(broker.call, broker.server.close_all_connections())


async def reconnected(client, action) -> list[ConnectionEvent]:
    """Run `action`, then wait until the client is CONNECTED again; return the events seen."""
    events: list[ConnectionEvent] = []
    unregister = client.on_event(events.append)
    try:
        await action()
        await wait_until(lambda: any(e.state is ConnectionState.CONNECTED for e in events), 5)
    finally:
        unregister()
    return events


async def test_reconnect_events_and_resubscribe_with_same_id_and_selector(broker, request):
    url = f"failover:(tcp://127.0.0.1:{broker.port})?{FAST}"
    async with connect(url) as client:
        sub = await client.subscribe("/queue/sel", ack="client-individual", selector="n > 1")
        events = await reconnected(client, lambda: drop_connections(broker))
        assert [e.state for e in events] == [ConnectionState.DISCONNECTED, ConnectionState.RECONNECTING,
                                             ConnectionState.CONNECTED]
        assert events[1].attempt == 1 and events[1].delay == 0.0
        assert events[2].broker == ("127.0.0.1", broker.port) and client.stats.reconnects == 1
        for n in range(4):
            await client.send("/queue/sel", f"n{n}", headers={"n": n})
        got = [await sub.get(3) for _ in range(2)]
        assert [m.text for m in got] == ["n2", "n3"] and sub.id == "sub-1"
        assert await sub.get(0.2) is None


async def test_durable_topic_subscription_is_resubscribed(broker):
    url = f"failover:(tcp://127.0.0.1:{broker.port})?{FAST}"
    async with connect(url, client_id="fo-durable") as client:
        sub = await client.subscribe("/topic/news", durable_name="d1")
        await reconnected(client, lambda: drop_connections(broker))
        await sub.wait_ready()
        await client.send("/topic/news", "after", persistent=True)
        assert (await sub.get(3)).text == "after"


async def test_unreceipted_sends_are_resent_once_and_deduplicated(broker):
    url = f"failover:(tcp://127.0.0.1:{broker.port})?{FAST}"
    async with connect(url) as client:
        ids: list[str] = []
        stop_at = 0
        drop = asyncio.create_task(drop_connections(broker))
        # Keep sending until the drop has hit and 100 more went out on the new connection.
        while len(ids) < 20_000 and (client.stats.reconnects == 0 or len(ids) < stop_at):
            ids.append(await client.send("/queue/resend", f"p{len(ids)}", persistent=True, receipt=False))
            if client.stats.reconnects == 0:
                stop_at = len(ids) + 100
            if len(ids) % 20 == 0:
                await asyncio.sleep(0.001)  # let the drop (another thread) get going
        await drop
        await client.disconnect(timeout=10)
        stats = client.stats
    assert stats.receipted == len(ids) and stats.refused == 0 and stats.reconnects == 1
    # stats.resent is usually > 0 here (sends in flight at the drop), but that depends on timing.
    async with connect(f"tcp://127.0.0.1:{broker.port}") as client:
        sub = await client.subscribe("/queue/resend")
        got = []
        while (message := await sub.get(0.5)) is not None:
            got.append(message.headers[PRODUCER_ID_HEADER])
    assert got == ids  # each exactly once, in order: resent copies were dropped by the broker


async def test_stale_acks_are_no_ops_and_the_broker_redelivers(broker):
    url = f"failover:(tcp://127.0.0.1:{broker.port})?{FAST}"
    async with connect(url) as client:
        for n in range(3):
            await client.send("/queue/stale", f"s{n}")
        sub = await client.subscribe("/queue/stale", ack="client-individual")
        first = [await sub.get(3) for _ in range(3)]
        await reconnected(client, lambda: drop_connections(broker))
        for message in first:
            await message.ack()  # delivered on the old connection: nothing to settle, no error
        assert client.stats.stale_acks == 3
        again = [await sub.get(3) for _ in range(3)]
        assert sorted(m.text for m in again) == ["s0", "s1", "s2"] and all(m.redelivered for m in again)
        for message in again:
            await message.ack(receipt=True)
        assert await sub.get(0.3) is None


async def test_transaction_cut_by_a_failover_rolls_back(broker):
    url = f"failover:(tcp://127.0.0.1:{broker.port})?{FAST}"
    async with connect(url) as client:
        with pytest.raises(TransactionRolledBack):
            async with client.transaction() as tx:
                await tx.send("/queue/tx", "t1", persistent=True)
                await reconnected(client, lambda: drop_connections(broker))
                await tx.send("/queue/tx", "t2", persistent=True)  # dropped: the transaction is gone
        async with client.transaction() as tx:  # a new one on the new connection commits
            await tx.send("/queue/tx", "t3", persistent=True)
        sub = await client.subscribe("/queue/tx")
        assert (await sub.get(3)).text == "t3"
        assert await sub.get(0.3) is None


async def test_send_times_out_while_every_broker_is_down():
    thread = BrokerThread().start()
    url = f"failover:(tcp://127.0.0.1:{thread.port},tcp://127.0.0.1:{dead_port()})?timeout=300&{FAST}"
    client = await connect(url)
    sub = client.subscribe("/queue/t")
    await sub.wait_ready()
    await asyncio.to_thread(thread.stop)
    await wait_until(lambda: client.state is not ConnectionState.CONNECTED, 5)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(ClientTimeout, match="timeout=300 ms"):
        await client.send("/queue/t", "x", persistent=True)
    assert 0.25 <= loop.time() - started < 2
    assert client.state is ConnectionState.RECONNECTING and len(client.pending_sends) == 0
    await client.close()
    assert client.state is ConnectionState.CLOSED


async def test_max_reconnect_attempts_gives_up_naming_the_brokers():
    thread = BrokerThread().start()
    port, other = thread.port, dead_port()
    url = (f"failover:(tcp://127.0.0.1:{port},tcp://127.0.0.1:{other})?maxReconnectAttempts=3"
           "&initialReconnectDelay=200&useExponentialBackOff=false")
    client = await connect(url)
    sub = client.subscribe("/queue/g")
    await sub.wait_ready()
    events: list[ConnectionEvent] = []
    collector = asyncio.create_task(_collect(client, events))
    await asyncio.to_thread(thread.stop)
    await wait_until(lambda: client.state is not ConnectionState.CONNECTED, 5)
    # Sent while reconnecting: it waits at the gate (timeout=-1) until the client gives up.
    blocked = asyncio.create_task(client.send("/queue/g", "waits for a connection", persistent=True))
    await asyncio.wait_for(collector, 5)
    attempts = [e.attempt for e in events if e.state is ConnectionState.RECONNECTING]
    assert attempts == [1, 2, 3] and events[-1].state is ConnectionState.FAILED
    with pytest.raises(ReconnectFailed) as caught:
        await blocked
    assert caught.value.attempts == 3 and caught.value.last_error
    assert set(caught.value.brokers) == {f"tcp://127.0.0.1:{port}", f"tcp://127.0.0.1:{other}"}
    with pytest.raises(ReconnectFailed):
        await sub.get(1)
    with pytest.raises(ReconnectFailed):
        await client.send("/queue/g", "after")
    with pytest.raises(ReconnectFailed):
        await client.disconnect()
    assert client.state is ConnectionState.CLOSED


async def _collect(client, events: list[ConnectionEvent]) -> None:
    async for event in client.events():
        events.append(event)


async def test_no_broker_at_all_fails_fast_with_the_attempt_limit():
    ports = (dead_port(), dead_port())
    url = f"failover:(tcp://127.0.0.1:{ports[0]},tcp://127.0.0.1:{ports[1]})?maxReconnectAttempts=2&{FAST}"
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(ConnectFailed, match="cannot connect") as caught:
        await connect(url)
    assert loop.time() - started < 2 and all(str(p) in str(caught.value) for p in ports)


@contextlib.asynccontextmanager
async def scripted(*scripts):
    """A scripted peer whose every connection is accepted and then runs the next script; yields the port."""
    queue = list(scripts)

    async def handshake_then_next(reader, writer) -> None:
        await accept(reader, writer)
        if queue:
            await queue.pop(0)(reader, writer)

    async with peer(handshake_then_next) as url:
        yield int(url.rsplit(":", 1)[1])


async def test_a_broker_side_error_reconnects_and_resends_with_the_same_producer_id():
    sends: list[dict[str, str]] = []

    async def not_master(reader, writer):
        command, headers = await read_frame(reader)
        sends.append(headers)
        writer.write(frame("ERROR", {"receipt-id": headers["receipt"], "message": "broker is not master"}))
        await writer.drain()

    async def receipt_it(reader, writer):
        command, headers = await read_frame(reader)
        sends.append(headers)
        writer.write(frame("RECEIPT", {"receipt-id": headers["receipt"]}))
        await writer.drain()
        await asyncio.sleep(10)

    async with scripted(not_master, receipt_it) as port:
        client = await connect(f"failover:(tcp://127.0.0.1:{port})?{FAST}")
        pid = await asyncio.wait_for(client.send("/queue/a", "x", persistent=True), 5)
        assert [s[PRODUCER_ID_HEADER] for s in sends] == [pid, pid]
        assert client.stats.resent == 1 and client.stats.reconnects == 1
        await client.close()


async def test_an_error_for_our_protocol_fault_fails_the_client():
    async def unknown_command(reader, writer):
        await read_frame(reader)
        writer.write(frame("ERROR", {"message": "unknown command"}))
        await writer.drain()

    async with scripted(unknown_command) as port:
        client = await connect(f"failover:(tcp://127.0.0.1:{port})?{FAST}")
        with pytest.raises(ClientError, match="unknown command"):
            await asyncio.wait_for(client.send("/queue/a", "x", persistent=True), 5)
        assert client.state is ConnectionState.FAILED and client.stats.reconnects == 0
        await client.close()


def teardown_module() -> None:
    if OUTAGES:
        print(f"\nfailover outages seen by the client (s): min {min(OUTAGES):.3f} "
              f"median {sorted(OUTAGES)[len(OUTAGES) // 2]:.3f} max {max(OUTAGES):.3f}")
