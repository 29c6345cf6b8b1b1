"""The client library against a real in-process broker over loopback TCP."""

from __future__ import annotations

import asyncio
import socket

import pytest

from config.model import Limits
from tests.helpers.server import running_broker
from transports.client import ClientError, ConnectFailed, ConnectionLost, ConnectionState, connect
from transports.stomp.commands import PRODUCER_ID_HEADER


@pytest.fixture(scope="module")
def broker():
    with running_broker(limits=Limits(heartbeat_send_ms=100, heartbeat_recv_ms=100)) as thread:
        yield thread


@pytest.fixture
def url(broker) -> str:
    return f"tcp://127.0.0.1:{broker.port}"


def _queue(request: pytest.FixtureRequest) -> str:
    return f"/queue/{request.node.name}"


async def test_receipted_and_pipelined_sends_all_arrive_in_order(url, request):
    dest = _queue(request)
    async with connect(url) as client:
        ids = [await client.send(dest, f"r{i}") for i in range(20)]
        ids += [await client.send(dest, f"p{i}".encode(), receipt=False) for i in range(200)]
        assert len(client.pending_sends) == 0
    # Leaving the block awaited the DISCONNECT receipt, so all 220 were handled.
    async with connect(url) as client:
        sub = await client.subscribe(dest)
        got = [await sub.get(5) for _ in range(220)]
    assert [m.text for m in got] == [f"r{i}" for i in range(20)] + [f"p{i}" for i in range(200)]
    assert [m.headers[PRODUCER_ID_HEADER] for m in got] == ids
    assert len(set(ids)) == 220 and all(not m.redelivered for m in got)


async def test_client_individual_ack_leaves_the_rest_for_redelivery(url, request):
    dest = _queue(request)
    async with connect(url) as client:
        for i in range(6):
            await client.send(dest, str(i))
        sub = await client.subscribe(dest, ack="client-individual")
        messages = [await sub.get(5) for _ in range(6)]
        for message in messages[::2]:
            await message.ack()
    async with connect(url) as client:
        sub = await client.subscribe(dest, ack="client-individual")
        again = [await sub.get(5) for _ in range(3)]
        assert sorted(m.text for m in again) == ["1", "3", "5"]
        assert all(m.redelivered for m in again)
        for message in again:
            await message.ack(receipt=True)
        assert await sub.get(0.2) is None


async def test_client_ack_is_cumulative(url, request):
    dest = _queue(request)
    async with connect(url) as client:
        for i in range(5):
            await client.send(dest, str(i))
        sub = await client.subscribe(dest, ack="client")
        messages = [await sub.get(5) for _ in range(5)]
        await messages[2].ack(receipt=True)  # acknowledges 0, 1 and 2
    async with connect(url) as client:
        sub = await client.subscribe(dest, ack="client")
        rest = [await sub.get(5) for _ in range(2)]
        assert [m.text for m in rest] == ["3", "4"]
        await rest[-1].ack()
        assert await sub.get(0.2) is None


async def test_nack_redelivers(url, request):
    dest = _queue(request)
    async with connect(url) as client:
        await client.send(dest, "once")
        sub = await client.subscribe(dest, ack="client-individual")
        first = await sub.get(5)
        await first.nack()
        second = await sub.get(5)
        assert second.text == "once" and second.redelivered
        await second.ack()


async def test_transaction_commit_and_abort(url, request):
    dest = _queue(request)
    async with connect(url) as client:
        sub = await client.subscribe(dest, ack="client-individual")
        async with client.transaction() as tx:
            await tx.send(dest, "committed")
            assert await sub.get(0.2) is None  # not visible before COMMIT
        message = await sub.get(5)
        assert message.text == "committed"
        with pytest.raises(RuntimeError):
            async with client.transaction() as tx:
                await tx.send(dest, "aborted")
                await tx.ack(message)
                raise RuntimeError("roll back")
        assert await sub.get(0.3) is None
        async with client.transaction() as tx:
            await tx.ack(message)
    async with connect(url) as client:
        sub = await client.subscribe(dest)
        assert await sub.get(0.3) is None  # the committed ack consumed it; the aborted send never came


async def test_unsubscribe_ends_iteration(url, request):
    async with connect(url) as client:
        sub = await client.subscribe(_queue(request))
        await sub.unsubscribe()
        assert [m async for m in sub] == []
        assert len(client.subscriptions) == 0


async def test_error_frame_fails_the_send_and_closes(url):
    states: list[ConnectionState] = []
    client = await connect(url)
    client.on_state(states.append)
    with pytest.raises(ClientError, match="destination"):
        await client.send("/queue/", "x")  # no name: refused (a name without a prefix is a queue)
    await asyncio.sleep(0)
    assert client.state is ConnectionState.CLOSED
    assert states == [ConnectionState.DISCONNECTED, ConnectionState.CLOSED]
    with pytest.raises(ConnectionLost):
        await client.send("/queue/a", "x")
    await client.close()


async def test_heartbeats_keep_an_idle_connection_alive(url, request):
    # The broker expects a beat every 100 ms and drops a client silent for 2 periods.
    async with connect(url, heartbeat=(100, 100)) as client:
        assert client.connection.session.send_every == 0.1
        await asyncio.sleep(0.6)
        await client.send(_queue(request), "still here")
        assert client.state is ConnectionState.CONNECTED


async def test_broker_dropping_connections_ends_sends_and_subscriptions(broker, url, request):
    dest = _queue(request)
    closed = asyncio.Event()
    client = await connect(url)
    client.on_state(lambda state: closed.set() if state is ConnectionState.CLOSED else None)
    sub = await client.subscribe(dest)
    await client.send(dest, "before")
    await asyncio.to_thread(broker.call, broker.server.close_all_connections())
    await asyncio.wait_for(closed.wait(), 3)
    assert (await sub.__anext__()).text == "before"  # what was delivered is still handed over
    with pytest.raises(ConnectionLost):
        await sub.__anext__()
    with pytest.raises(ConnectionLost):
        await client.send(dest, "after")
    await client.close()


def _dead_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def test_plain_url_to_a_dead_port_fails_at_once():
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(ConnectFailed, match="cannot connect"):
        await connect(f"tcp://127.0.0.1:{_dead_port()}")
    assert loop.time() - started < 2


async def test_failover_url_connects_to_the_reachable_broker(broker, request):
    dead = _dead_port()
    url = f"failover:(tcp://127.0.0.1:{dead},tcp://127.0.0.1:{broker.port})?randomize=false"
    async with connect(url) as client:
        assert client.connection.address == ("127.0.0.1", broker.port)
        await client.send(_queue(request), "via failover")


async def test_failover_startup_attempts_back_off_then_give_up():
    ports = (_dead_port(), _dead_port())
    url = (f"failover:(tcp://127.0.0.1:{ports[0]},tcp://127.0.0.1:{ports[1]})?initialReconnectDelay=100"
           "&startupMaxReconnectAttempts=3&useExponentialBackOff=false")
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(ConnectFailed) as caught:
        await connect(url)
    elapsed = loop.time() - started
    # 3 passes, 2 delays of 100 ms (±20 % jitter) between them.
    assert 0.15 <= elapsed < 2.0
    assert str(ports[0]) in str(caught.value) and str(ports[1]) in str(caught.value)


async def test_receipted_persistent_sends_survive_a_broker_restart(tmp_path):
    from config.model import StoreSettings
    from stores.base import NoFence
    from stores.registry import create_store

    def store():
        return create_store(tmp_path, StoreSettings(type="leveldb"), NoFence())

    def start():
        return running_broker(store=store(), data_dir=tmp_path)

    with start() as first:
        async with connect(f"tcp://127.0.0.1:{first.port}") as client:
            for i in range(10):
                await client.send("/queue/durable", f"d{i}", persistent=True)
            await client.send("/queue/durable", "transient")  # not persistent: gone after a restart
    with start() as second:
        async with connect(f"tcp://127.0.0.1:{second.port}") as client:
            sub = await client.subscribe("/queue/durable", ack="client-individual")
            got = []
            while (message := await sub.get(0.5)) is not None:
                got.append(message.text)
                await message.ack()
    assert got == [f"d{i}" for i in range(10)]
