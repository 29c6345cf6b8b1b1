"""Connection governance against a real broker over loopback sockets: the CONNECT timeout, the
per-address and total caps, the heart-beat clamp and the scan that drops clients whose beats stopped.

Client sockets bound to 127.0.0.2 and 127.0.0.3 are other hosts as far as the broker can tell."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import stomp

from config.model import Limits
from tests.helpers.rawstomp import RawStomp
from tests.helpers.server import HOST, BrokerThread, running_broker
from tests.integration.test_stomp_transport import closed_by_peer, error_of

WAIT = 20.0  # generous: only a failing test waits this long, and CI machines are slow
SCAN = 0.05  # a short scan interval, so deadlines below are met within a few tens of ms


def closures(broker: BrokerThread) -> dict[str, int]:
    """The server's count of ended connections by reason, read on the broker's loop."""

    async def read() -> dict[str, int]:
        assert broker.server is not None
        return dict(broker.server.closed)

    return broker.call(read())


def scan_tasks(broker: BrokerThread) -> int:
    async def count() -> int:
        return sum(1 for task in asyncio.all_tasks() if task.get_name() == "connection-scan")

    return broker.call(count())


def eventually(condition: Callable[[], bool], timeout: float = WAIT) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True




def test_sockets_that_never_connect_are_closed_and_free_their_slots() -> None:
    limits = Limits(max_connections=20, max_connections_per_address=20, connect_timeout=0.5,
                    connection_scan_interval=SCAN)
    with running_broker(limits=limits) as broker:
        good = RawStomp(HOST, broker.port)
        idle: list[RawStomp] = []
        try:
            assert good.connect().startswith("CONNECTED")
            opened = time.monotonic()
            idle = [RawStomp(HOST, broker.port) for _ in range(19)]  # never send a byte
            with RawStomp(HOST, broker.port) as refused:  # every slot is taken
                assert error_of(refused.read_frame(WAIT)) == "too many connections"
            assert scan_tasks(broker) == 1  # one scan for the listener, not one timer per connection
            for raw in idle:
                assert error_of(raw.read_frame(WAIT)) == "connect timeout"
                assert closed_by_peer(raw, WAIT)
            assert time.monotonic() - opened > 0.45  # not before the timeout
            assert eventually(lambda: broker.stats()["connections"] == 1)
            with RawStomp(HOST, broker.port) as late:  # slots are free again
                assert late.connect().startswith("CONNECTED")
            # The client that did connect in time is not touched by the timeout.
            good.send_frame("SEND", {"destination": "/queue/g", "receipt": "r1"}, b"x")
            assert good.read_frame(WAIT).startswith("RECEIPT")
            counts = closures(broker)
            assert counts["connect_timeout"] == 19 and counts["refused_connection_limit"] == 1
        finally:
            for raw in [good, *idle]:
                raw.close()


def test_per_address_cap_refuses_the_excess_while_other_addresses_connect() -> None:
    limits = Limits(max_connections=50, max_connections_per_address=3, connection_scan_interval=SCAN)
    with running_broker(limits=limits) as broker:
        clients: list[RawStomp] = []

        def client(source: str | None = None) -> RawStomp:
            raw = RawStomp(HOST, broker.port, source=source)
            clients.append(raw)
            return raw

        try:
            for _ in range(3):
                assert client().connect().startswith("CONNECTED")
            excess = client()
            reply = excess.read_frame(WAIT)
            assert error_of(reply) == "too many connections from this address"
            assert "at most 3 connections from one address" in reply
            assert closed_by_peer(excess, WAIT)
            for source in ("127.0.0.2", "127.0.0.3"):
                for _ in range(3):
                    assert client(source).connect().startswith("CONNECTED")
            assert error_of(client("127.0.0.2").read_frame(WAIT)) == "too many connections from this address"
            assert broker.stats()["connections"] == 9
            clients[0].close()  # one of 127.0.0.1's three leaves: its slot is 127.0.0.1's again
            assert eventually(lambda: broker.stats()["connections"] == 8)
            assert client().connect().startswith("CONNECTED")
            assert closures(broker)["refused_address_limit"] == 2
        finally:
            for raw in clients:
                raw.close()


def test_heartbeat_offers_above_the_clamp_are_negotiated_down_and_enforced() -> None:
    limits = Limits(heartbeat_send_ms=100, heartbeat_recv_ms=100, max_heartbeat_ms=300,
                    connection_scan_interval=SCAN)
    with running_broker(limits=limits) as broker, RawStomp(HOST, broker.port) as raw:
        # "I beat every 11.5 days and want beats as rarely": unclamped, a silent client would stay.
        raw.send_frame("CONNECT", {"accept-version": "1.2", "heart-beat": "999999999,999999999"})
        assert "heart-beat:300,300" in raw.read_frame(WAIT)
        started = time.monotonic()
        data, closed = raw.read_until_closed(WAIT)
        elapsed = time.monotonic() - started
        assert closed and 0.55 < elapsed < 3.0, elapsed  # grace 2 × 300 ms, then the next scan
        assert data.strip(b"\n") == b"" and b"\n" in data  # our beats came at the clamped interval
        assert closures(broker)["heartbeat_timeout"] == 1


def test_a_client_that_stops_heartbeating_is_closed_by_the_scan() -> None:
    limits = Limits(heartbeat_send_ms=0, heartbeat_recv_ms=200, heartbeat_grace=2.0,
                    connection_scan_interval=SCAN)
    with running_broker(limits=limits) as broker:
        steady = stomp.Connection12([(HOST, broker.port)], heartbeats=(200, 0))
        steady.connect(wait=True)
        try:
            with RawStomp(HOST, broker.port) as raw:
                raw.send_frame("CONNECT", {"accept-version": "1.2", "heart-beat": "200,0"})
                assert "heart-beat:0,200" in raw.read_frame(WAIT)
                beating_until = time.monotonic() + 1.2  # three times the 400 ms allowed silence
                while time.monotonic() < beating_until:
                    raw.sock.sendall(b"\n")
                    time.sleep(0.05)
                assert closures(broker).get("heartbeat_timeout", 0) == 0
                assert broker.stats()["connections"] == 2
                stopped = time.monotonic()  # the client falls silent
                assert closed_by_peer(raw, WAIT)
                assert 0.35 < time.monotonic() - stopped < 2.5
            assert closures(broker)["heartbeat_timeout"] == 1
            assert eventually(lambda: broker.stats()["connections"] == 1)
            assert steady.is_connected()  # the client that kept beating is still served
        finally:
            steady.disconnect()
