"""The TCP connector against hostile and broken peers (raw sockets) and stomp.py bystanders:
protocol violations, connection limit, heart-beats, flow control, shutdown, lock-loss disconnect."""

from __future__ import annotations

import socket
import time

import pytest
import stomp

from config.model import Limits
from tests.helpers.rawstomp import RawStomp
from tests.helpers.server import HOST, running_broker
from tests.integration.test_stomp_messaging import Peer

WAIT = 20.0  # generous: only a failing test waits this long, and CI machines are slow




def closed_by_peer(raw: RawStomp, timeout: float) -> bool:
    """True once the broker closed the socket (EOF or reset) within `timeout`."""
    return raw.read_until_closed(timeout)[1]


def error_of(text: str) -> str:
    lines = text.split("\n")
    assert lines[0] == "ERROR", text
    headers = dict(line.split(":", 1) for line in lines[1 : lines.index("")])
    assert text.split("\n\n", 1)[1].strip(), "an ERROR frame carries a body"
    return headers["message"]


VIOLATIONS = {
    "malformed header": b"SEND\ndestination:/queue/a\nno-colon-here\n\nx\x00",
    "bad command": b"send lowercase\n\n\x00",
    "unknown command": b"FOO\n\n\x00",
    "oversized frame": b"SEND\ndestination:/queue/a\ncontent-length:9000\n\n" + b"x" * 9000 + b"\x00",
    "too many headers": b"SEND\n" + b"".join(b"h%d:v\n" % i for i in range(30)) + b"\nx\x00",
    "second connect": b"CONNECT\naccept-version:1.2\n\n\x00",
    "bad escape": b"SEND\ndestination:/queue/a\nx:\\q\n\n\x00",
}


@pytest.mark.parametrize("case", sorted(VIOLATIONS))
def test_protocol_violation_gets_error_and_close_without_disturbing_others(case: str) -> None:
    limits = Limits(max_frame_size=4096, max_header_count=16)
    with running_broker(limits=limits, uvloop=case.startswith("bad")) as broker:
        good = Peer(broker.port)
        try:
            good.conn.subscribe("/queue/good", id="s", ack="auto")
            with RawStomp(HOST, broker.port) as bad:
                assert bad.connect("1.2").startswith("CONNECTED")
                good.conn.send("/queue/good", "before", receipt="r1")
                bad.sock.sendall(VIOLATIONS[case])
                assert error_of(bad.read_frame(WAIT))
                assert closed_by_peer(bad, WAIT)
            good.conn.send("/queue/good", "after", receipt="r2")
            assert good.bodies(2) == ["before", "after"]
            assert good.conn.is_connected() and good.listener.errors == []
        finally:
            good.close()


def test_frame_before_connect_is_refused() -> None:
    with running_broker() as broker, RawStomp(HOST, broker.port) as raw:
        raw.send_frame("SEND", {"destination": "/queue/a"}, b"sneaky")
        assert error_of(raw.read_frame(WAIT)) == "not connected"
        assert closed_by_peer(raw, WAIT)
        assert broker.stats()["destinations"] == {}


def test_unsupported_version_lists_ours() -> None:
    with running_broker() as broker, RawStomp(HOST, broker.port) as raw:
        reply = raw.connect("9.9")
        assert error_of(reply) == "unsupported protocol version" and "version:1.0,1.1,1.2" in reply


def test_connection_limit() -> None:
    with running_broker(limits=Limits(max_connections=2)) as broker:
        first, second = RawStomp(HOST, broker.port), RawStomp(HOST, broker.port)
        try:
            assert first.connect().startswith("CONNECTED") and second.connect().startswith("CONNECTED")
            with RawStomp(HOST, broker.port) as third:
                assert error_of(third.read_frame(WAIT)) == "too many connections"
                assert closed_by_peer(third, WAIT)
        finally:
            first.close()
            second.close()


@pytest.mark.parametrize("uvloop", [False, True])
def test_silent_client_is_dropped_after_heartbeat_grace(uvloop: bool) -> None:
    limits = Limits(heartbeat_recv_ms=200, heartbeat_send_ms=0, heartbeat_grace=1.5)
    with running_broker(limits=limits, uvloop=uvloop) as broker, RawStomp(HOST, broker.port) as raw:
        raw.send_frame("CONNECT", {"accept-version": "1.2", "heart-beat": "100,0"})
        assert "heart-beat:0,200" in raw.read_frame(WAIT)
        started = time.monotonic()
        assert closed_by_peer(raw, WAIT)
        assert 0.25 < time.monotonic() - started < 2.0


def test_heartbeating_clients_stay_and_receive_beats() -> None:
    limits = Limits(heartbeat_recv_ms=100, heartbeat_send_ms=100, heartbeat_grace=2.0)
    with running_broker(limits=limits) as broker:
        conn = stomp.Connection12([(HOST, broker.port)], heartbeats=(100, 100))
        conn.connect(wait=True)
        try:
            with RawStomp(HOST, broker.port) as raw:
                raw.send_frame("CONNECT", {"accept-version": "1.2", "heart-beat": "0,100"})
                assert raw.read_frame(WAIT).startswith("CONNECTED")
                raw.sock.settimeout(WAIT)
                assert raw.sock.recv(16).strip(b"\n") == b""  # a bare EOL: the server's heart-beat
            time.sleep(1.0)
            assert conn.is_connected() and broker.stats()["connections"] == 1
        finally:
            conn.disconnect()


@pytest.mark.parametrize("uvloop", [False, True])
def test_consumer_that_never_reads_pauses_delivery_and_memory_stays_bounded(uvloop: bool) -> None:
    body = b"y" * 16384
    limits = Limits(destination_memory_limit=2 * 1024 * 1024, producer_flow_control_timeout=0)
    with running_broker(limits=limits, uvloop=uvloop) as broker:
        stuck = socket.socket()
        stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stuck.connect((HOST, broker.port))
        producer = RawStomp(HOST, broker.port)
        try:
            stuck.sendall(b"CONNECT\naccept-version:1.2\n\n\x00SUBSCRIBE\nid:s\ndestination:/queue/flow\n\n\x00")
            assert producer.connect().startswith("CONNECTED")
            full = None
            for i in range(2000):  # bounded: the limit is reached after ~ (socket buffers + 2 MiB) / 16 KiB
                producer.send_frame("SEND", {"destination": "/queue/flow", "receipt": str(i)}, body)
                reply = producer.read_frame(WAIT)
                if not reply.startswith("RECEIPT"):
                    full = reply
                    break
            assert full is not None and error_of(full) == "destination full (limits.destination_memory_limit)"
            stats = broker.stats()["destinations"]["/queue/flow"]
            assert stats["depth"] > 50 and stats["bytes"] <= limits.destination_memory_limit

            async def buffered() -> list[int]:
                return [c.wire.transport.get_write_buffer_size() for c in broker.server._connections]

            assert max(broker.call(buffered())) < 512 * 1024  # high-water mark + one frame
            # The consumer wakes up: everything held back is delivered.
            stuck.settimeout(WAIT)
            expected = stats["enqueued"]
            frames = 0  # each MESSAGE ends with a NUL; the bodies hold none
            deadline = time.monotonic() + 20
            while frames < expected and time.monotonic() < deadline:
                chunk = stuck.recv(1 << 20)
                assert chunk, "the broker closed the slow consumer"
                frames += chunk.count(b"\x00")
            assert frames == expected
        finally:
            stuck.close()
            producer.close()


def test_close_all_connections_and_graceful_stop() -> None:
    with running_broker() as broker:
        peers = [Peer(broker.port) for _ in range(3)]
        try:
            assert broker.stats()["connections"] == 3
            broker.call(broker.server.close_all_connections())
            deadline = time.monotonic() + WAIT
            while any(p.conn.is_connected() for p in peers) and time.monotonic() < deadline:
                time.sleep(0.02)
            assert not any(p.conn.is_connected() for p in peers)
            assert broker.server.connection_count == 0
        finally:
            for p in peers:
                p.close()
        still = RawStomp(HOST, broker.port)
        assert still.connect().startswith("CONNECTED")
        port = broker.port
        broker.call(broker.server.stop(grace=0.5))
        assert closed_by_peer(still, WAIT)
        still.close()
        with pytest.raises(OSError):
            socket.create_connection((HOST, port), timeout=1).close()
