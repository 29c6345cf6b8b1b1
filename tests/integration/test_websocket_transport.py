"""The ws:// connector with a real broker on loopback and Python WebSocket clients speaking STOMP:
subprotocols, produce/subscribe/ack, heart-beats as messages, size limits, flow control both ways,
the upgrade's own bounds, closing, and a stomp.py TCP client on the same queue."""

from __future__ import annotations

import socket
import time

import pytest
from websockets.exceptions import ConnectionClosed

import transports.websocket as websocket
from config.model import BrokerConfig, Limits
from tests.helpers.rawws import RawWs, WsStomp, split_frame, stomp_frame
from tests.helpers.server import HOST, BrokerThread, running_broker
from tests.integration.test_stomp_messaging import Peer

WAIT = 20.0  # generous: only a failing test waits this long, and CI machines are slow


def ws_broker(uvloop: bool = False, **limits: int | float):  # type: ignore[no-untyped-def]
    return running_broker(limits=Limits(**limits), scheme="ws", uvloop=uvloop)


@pytest.mark.parametrize(("offered", "chosen"), [
    (["v10.stomp", "v11.stomp", "v12.stomp"], "v12.stomp"),  # what stompjs offers
    (["v11.stomp", "v10.stomp"], "v11.stomp"),
    (["stomp"], "stomp"),  # ActiveMQ's name
    (["mqtt", "v10.stomp"], "v10.stomp"),
    (["mqtt"], None),  # none of ours: accepted without a subprotocol, as RabbitMQ does
    (None, None),  # none offered
])
def test_the_highest_stomp_subprotocol_offered_is_chosen(offered: list[str] | None,
                                                          chosen: str | None) -> None:
    with ws_broker() as broker:
        client = WsStomp(broker.port, subprotocols=offered)  # type: ignore[arg-type]
        try:
            assert client.ws.subprotocol == chosen
            assert client.connect()["version"] == "1.2"  # STOMP's own negotiation decides the version
        finally:
            client.close()


@pytest.mark.parametrize("uvloop", [False, True])
def test_produce_subscribe_ack_each_frame_one_message(uvloop: bool) -> None:
    with running_broker(scheme="ws", uvloop=uvloop) as broker:
        consumer, producer = WsStomp(broker.port), WsStomp(broker.port)
        try:
            consumer.connect()
            producer.connect()
            consumer.send("SUBSCRIBE", {"destination": "/queue/w", "id": "s", "ack": "client-individual",
                                        "receipt": "sub"})
            assert consumer.frame()[:2] == ("RECEIPT", {"receipt-id": "sub"})
            producer.send("SEND", {"destination": "/queue/w", "receipt": "r1"}, "héllo")
            producer.send("SEND", {"destination": "/queue/w", "receipt": "r2",
                                   "content-length": "3"}, b"\xff\x00\xfe")
            assert [producer.frame()[1]["receipt-id"] for _ in range(2)] == ["r1", "r2"]
            text, binary = consumer.recv(), consumer.recv()
            assert isinstance(text, str) and isinstance(binary, bytes)  # text unless not UTF-8
            (command, headers, body), second = split_frame(text), split_frame(binary)
            assert command == "MESSAGE" and body.decode() == "héllo"
            assert second[0] == "MESSAGE" and second[2] == b"\xff\x00\xfe"
            assert broker.stats()["destinations"]["/queue/w"]["in_flight"] == 2
            consumer.send("ACK", {"id": headers["ack"], "receipt": "a1"})
            consumer.send("ACK", {"id": second[1]["ack"], "receipt": "a2"})
            assert [consumer.frame()[1]["receipt-id"] for _ in range(2)] == ["a1", "a2"]
            stats = broker.stats()["destinations"]["/queue/w"]
            assert (stats["in_flight"], stats["depth"], stats["dequeued"]) == (0, 0, 2)
        finally:
            consumer.close()
            producer.close()


def test_a_tcp_producer_and_a_websocket_consumer_share_a_queue() -> None:
    config = BrokerConfig(name="test", connectors=[f"tcp://{HOST}:0", f"ws://{HOST}:0"])
    broker = BrokerThread(config).start()
    try:
        tcp_port, ws_port = (s.bound_port for s in broker.servers)
        stomppy = Peer(tcp_port)
        consumer = WsStomp(ws_port)
        consumer.connect()
        consumer.send("SUBSCRIBE", {"destination": "/queue/mixed", "id": "s", "receipt": "sub"})
        assert consumer.frame()[0] == "RECEIPT"
        stomppy.conn.send("/queue/mixed", "from stomp.py", receipt="r")
        stomppy.receipt("r")
        assert consumer.frame()[2] == b"from stomp.py"
        consumer.send("SEND", {"destination": "/queue/back"}, "from websocket")
        stomppy.conn.subscribe("/queue/back", id="b", ack="auto")
        assert stomppy.bodies(1) == ["from websocket"]
        consumer.close()
        stomppy.close()
    finally:
        broker.stop()


def test_heartbeats_travel_as_eol_messages_and_a_silent_peer_is_dropped() -> None:
    with ws_broker(heartbeat_send_ms=100, heartbeat_recv_ms=100, heartbeat_grace=2.0) as broker:
        client = WsStomp(broker.port)
        try:
            assert client.connect(**{"heart-beat": "100,100"})["heart-beat"] == "100,100"
            beats, deadline = 0, time.monotonic() + 1.0
            while time.monotonic() < deadline:  # we beat too, so the broker keeps us
                client.ws.send("\n")
                try:
                    beats += client.recv(0.05) == "\n"
                except TimeoutError:
                    pass
            assert beats >= 5 and broker.stats()["connections"] == 1
            started = time.monotonic()
            assert client.close_code(WAIT) == -1  # now silent: aborted after grace × interval
            assert 0.15 < time.monotonic() - started < 2.0
        finally:
            client.close()


def test_an_oversized_message_is_refused_from_its_header_and_others_go_on() -> None:
    with ws_broker(max_frame_size=4096) as broker:
        bystander = WsStomp(broker.port)
        bystander.connect()
        try:
            with RawWs(broker.port) as huge:
                huge.send_messages(stomp_frame("CONNECT", {"accept-version": "1.2"}))
                assert huge.read_until(1, WAIT)[0].startswith(b"CONNECTED")
                huge.announce_text(100 * 1024 * 1024)  # the payload never follows: nothing is buffered
                assert huge.wait_closed(WAIT) == 1009  # RFC 6455: message too big
            # Just over the STOMP limit but within the message slack: STOMP's own ERROR, then close.
            over = WsStomp(broker.port)
            over.connect()
            over.send("SEND", {"destination": "/queue/big"}, "x" * 4200)
            command, headers, _ = over.frame()
            assert command == "ERROR" and headers["message"].startswith("frame too large")
            assert over.close_code(WAIT) == 1000
            bystander.send("SEND", {"destination": "/queue/big", "receipt": "ok"}, "small")
            assert bystander.frame()[1] == {"receipt-id": "ok"}
            assert broker.stats()["destinations"]["/queue/big"]["enqueued"] == 1
        finally:
            bystander.close()


def test_a_frame_split_over_messages_and_frames_sharing_one_are_parsed() -> None:
    with ws_broker() as broker, RawWs(broker.port) as raw:
        data = stomp_frame("CONNECT", {"accept-version": "1.2"}) + stomp_frame(
            "SEND", {"destination": "/queue/s", "receipt": "joined"}, "one frame in three messages")
        raw.send_messages(data[:20], data[20:70], data[70:])
        replies = [split_frame(m) for m in raw.read_until(2, WAIT)]
        assert [r[0] for r in replies] == ["CONNECTED", "RECEIPT"]
        assert broker.stats()["destinations"]["/queue/s"]["depth"] == 1


@pytest.mark.parametrize("uvloop", [False, True])
def test_a_burst_beyond_the_pending_bound_pauses_reading_and_loses_nothing(uvloop: bool) -> None:
    # 300 messages in one socket write reach the broker in one read; with two pending frames the
    # connection pauses the wire at once, so the rest wait in the wire and go on when it resumes.
    with ws_broker(uvloop, max_pending_frames=2) as broker, RawWs(broker.port) as raw:
        sends = [stomp_frame("SEND", {"destination": "/queue/burst", "receipt": str(i)}, str(i))
                 for i in range(300)]
        raw.send_messages(stomp_frame("CONNECT", {"accept-version": "1.2"}), *sends)
        replies = [split_frame(m) for m in raw.read_until(301, 15.0)]
        assert [r[1].get("receipt-id") for r in replies[1:]] == [str(i) for i in range(300)]
        assert broker.stats()["destinations"]["/queue/burst"]["depth"] == 300


@pytest.mark.parametrize("uvloop", [False, True])
def test_a_consumer_that_stops_reading_pauses_delivery_and_gets_it_all_later(uvloop: bool) -> None:
    body = "z" * 16384
    with ws_broker(uvloop) as broker, RawWs(broker.port, rcvbuf=4096) as stuck:
        stuck.send_messages(stomp_frame("CONNECT", {"accept-version": "1.2"}),
                            stomp_frame("SUBSCRIBE", {"destination": "/queue/slow", "id": "s"}))
        producer = WsStomp(broker.port)
        producer.connect()
        try:
            for i in range(400):  # 6.4 MiB, far past the socket buffers and the write high-water mark
                receipt = {"receipt": "end"} if i == 399 else {}
                producer.send("SEND", {"destination": "/queue/slow", **receipt}, f"{i:04d}{body}")
            assert producer.frame(10.0)[1] == {"receipt-id": "end"}
            stats = broker.stats()["destinations"]["/queue/slow"]
            assert stats["depth"] > 100  # held back in the queue, not pushed into a buffer

            async def buffered() -> list[int]:
                assert broker.server is not None
                return [c.wire.transport.get_write_buffer_size() for c in broker.server._connections]

            assert max(broker.call(buffered())) < 512 * 1024  # the high-water mark + one frame
            frames = [split_frame(m) for m in stuck.read_until(401, 20.0)]
            assert [f[2][:4] for f in frames[1:]] == [b"%04d" % i for i in range(400)]
        finally:
            producer.close()


def test_upgrades_are_bounded_in_number_and_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(websocket, "HANDSHAKE_TIMEOUT", 0.3)
    with ws_broker(max_connections=2) as broker:
        idle = [socket.create_connection((HOST, broker.port)) for _ in range(2)]
        try:
            third = socket.create_connection((HOST, broker.port), timeout=WAIT)
            assert third.recv(100) == b""  # two upgrades already pending: closed at once
            third.close()
            for sock in idle:  # never upgraded: dropped after the timeout
                sock.settimeout(WAIT)
                started = time.monotonic()
                try:
                    assert sock.recv(100) == b""
                except ConnectionResetError:
                    pass  # aborted: a reset rather than an orderly end
                assert time.monotonic() - started < 2.0
            with RawWs(broker.port) as fine:  # the slots are free again
                fine.send_messages(stomp_frame("CONNECT", {"accept-version": "1.2"}))
                assert fine.read_until(1, WAIT)[0].startswith(b"CONNECTED")
        finally:
            for sock in idle:
                sock.close()


def test_plain_http_gets_426_and_the_connection_limit_is_a_stomp_error() -> None:
    with ws_broker(max_connections=1) as broker:
        with socket.create_connection((HOST, broker.port), timeout=WAIT) as http:
            http.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert http.recv(4096).startswith(b"HTTP/1.1 426 ")
        first, second = WsStomp(broker.port), WsStomp(broker.port)
        try:
            first.connect()
            command, headers, _ = second.frame()
            assert (command, headers["message"]) == ("ERROR", "too many connections")
            assert second.close_code(WAIT) == 1000
        finally:
            first.close()
            second.close()


def test_disconnect_and_broker_stop_close_with_the_closing_handshake() -> None:
    with ws_broker() as broker:
        leaving, staying = WsStomp(broker.port), WsStomp(broker.port)
        leaving.connect()
        staying.connect()
        leaving.send("DISCONNECT", {"receipt": "bye"})
        assert leaving.frame()[:2] == ("RECEIPT", {"receipt-id": "bye"})
        leaving.close()
        deadline = time.monotonic() + WAIT
        while broker.stats()["connections"] != 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert broker.stats()["connections"] == 1
        assert broker.server is not None
        broker.call(broker.server.stop(grace=0.5))
        with pytest.raises(ConnectionClosed) as closed:
            staying.recv(WAIT)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1000
