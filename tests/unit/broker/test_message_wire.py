"""A transport that is neither TCP nor a byte stream: each write is one whole message, as WebSocket
sends frames. It supplies only a listener and a Wire; the real transports.connection.Connection and
StompServer do the framing, heart-beats, pending-frame bound, flow control and closing, and a real
broker Session answers. No sockets."""

from __future__ import annotations

import asyncio

from broker.engine.core import Broker
from config.model import BrokerConfig, Limits
from transports.connection import Connection
from transports.server import StompServer
from transports.stomp.codec import StompParser, encode
from transports.stomp.frame import Frame

WAIT = 20.0  # generous: only a failing test waits this long, and CI machines are slow


class MessageWire:
    """One peer's message channel: every write is recorded as one message."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.messages: list[bytes] = []
        self.reading = True
        self.pauses = 0
        self.state = "open"  # open, closed (flushed) or aborted

    def write(self, data: bytes) -> None:
        assert self.state == "open", "written after close"
        self.messages.append(data)

    def pause_reading(self) -> None:
        self.reading, self.pauses = False, self.pauses + 1

    def write_buffer_size(self) -> int:
        return sum(map(len, self.messages))  # nobody takes them: all still waiting

    def resume_reading(self) -> None:
        self.reading = True

    def is_closing(self) -> bool:
        return self.state != "open"

    def close(self) -> None:
        self._end("closed")

    def abort(self) -> None:
        self._end("aborted")

    def _end(self, state: str) -> None:
        if self.state == "open":
            self.state = state
            asyncio.get_running_loop().call_soon(self.conn.connection_lost, None)

    # -- the test's side of the channel -------------------------------------------------------------

    def deliver(self, *frames: Frame) -> None:
        """The peer sends each frame as one message (several frames in one message if asked)."""
        self.conn.received(b"".join(encode(f) for f in frames))

    def frames(self) -> list[Frame]:
        """Every message written so far, parsed; each must hold exactly one frame or a heart-beat."""
        out = []
        for message in self.messages:
            if message == b"\n":
                continue
            parser = StompParser()
            parser.feed(message)
            frame = parser.next_frame()
            assert frame is not None and parser.next_frame() is None, message
            out.append(frame)
        return out

    def commands(self) -> list[str]:
        return [f.command for f in self.frames()]


class MessageServer(StompServer):
    """The listener of a message transport: here, peers are made by `accept()`."""

    async def _listen(self) -> None:
        self.listening = True

    def _stop_listening(self) -> None:
        self.listening = False

    async def _listener_closed(self) -> None:
        return None

    @property
    def bound_port(self) -> int:
        return self.port

    def accept(self, peer: str) -> MessageWire:
        conn = self.new_connection()
        wire = MessageWire(conn)
        conn.open(wire, peer)
        return wire


async def until(condition, timeout: float = WAIT) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.005)


async def serving(**limits: int | float) -> tuple[Broker, MessageServer]:
    broker = Broker(BrokerConfig(name="unit", limits=Limits(**limits)))  # served by no real connector
    server = MessageServer("127.0.0.1", 1, broker.handler_factory, broker.limits, scheme="ws")
    await server.start()
    return broker, server


def connect(version: str = "1.2", **headers: str) -> Frame:
    return Frame("CONNECT", {"accept-version": version, "host": "x", **headers})


async def test_frames_travel_as_one_message_each() -> None:
    broker, server = await serving()
    consumer, producer = server.accept("10.0.0.1:1"), server.accept("10.0.0.2:2")
    consumer.deliver(connect(), Frame("SUBSCRIBE", {"destination": "/queue/a", "id": "s", "receipt": "1"}))
    producer.deliver(connect())
    await until(lambda: len(producer.messages) == 1)
    producer.deliver(Frame("SEND", {"destination": "/queue/a", "receipt": "2"}, b"over messages"))
    await until(lambda: consumer.commands() == ["CONNECTED", "RECEIPT", "MESSAGE"])
    assert consumer.frames()[2].body == b"over messages"
    assert producer.commands() == ["CONNECTED", "RECEIPT"]
    assert {s.conn.scheme for s in broker.sessions} == {"ws"}  # the session sees how peers came in
    await server.stop(grace=1.0)
    assert consumer.state == producer.state == "closed" and server.connection_count == 0


async def test_heartbeats_are_sent_and_a_silent_peer_is_dropped() -> None:
    _, server = await serving(heartbeat_send_ms=20, heartbeat_recv_ms=50, heartbeat_grace=1.5)
    wire = server.accept("p:1")
    wire.deliver(connect(**{"heart-beat": "50,20"}))
    await until(lambda: wire.commands() == ["CONNECTED"])
    assert wire.frames()[0].headers["heart-beat"] == "20,50"
    started = asyncio.get_running_loop().time()
    await until(lambda: wire.state == "aborted")  # the peer never sends a byte
    assert 0.07 < asyncio.get_running_loop().time() - started < 1.0
    assert b"\n" in wire.messages  # beats went out, each as a message of its own
    await asyncio.sleep(0)  # connection_lost follows an abort by one loop turn, as on asyncio transports
    assert server.connection_count == 0


async def test_a_slow_peer_pauses_delivery_and_gets_it_all_on_resume() -> None:
    broker, server = await serving()
    consumer, producer = server.accept("c:1"), server.accept("p:2")
    consumer.deliver(connect(), Frame("SUBSCRIBE", {"destination": "/queue/f", "id": "s"}))
    producer.deliver(connect())
    await until(lambda: len(consumer.messages) == 1 and len(producer.messages) == 1)
    consumer.conn.pause_writing()  # the transport's buffer passed its high-water mark
    producer.deliver(*(Frame("SEND", {"destination": "/queue/f"}, b"%d" % i) for i in range(5)))
    producer.deliver(Frame("SEND", {"destination": "/queue/f", "receipt": "done"}, b"5"))
    await until(lambda: producer.commands()[-1:] == ["RECEIPT"])
    assert consumer.commands() == ["CONNECTED"]  # held back, not buffered without bound
    assert broker.stats()["destinations"]["/queue/f"]["depth"] == 6
    consumer.conn.resume_writing()
    await until(lambda: len(consumer.messages) == 7)
    assert [f.body for f in consumer.frames()[1:]] == [b"%d" % i for i in range(6)]


async def test_pending_frames_are_bounded_by_pausing_the_reader() -> None:
    _, server = await serving(max_pending_frames=2)
    wire = server.accept("p:1")
    sends = [Frame("SEND", {"destination": "/queue/b", "receipt": str(i)}, b"x") for i in range(6)]
    wire.deliver(connect(), *sends)  # seven frames in one message, more than the queue holds
    assert wire.pauses == 1 and not wire.reading
    await until(lambda: len(wire.messages) == 7)
    assert wire.reading  # resumed once the queue drained
    assert [f.headers.get("receipt-id") for f in wire.frames()[1:]] == [str(i) for i in range(6)]


async def test_a_protocol_violation_is_error_then_close() -> None:
    _, server = await serving()
    wire, bystander = server.accept("bad:1"), server.accept("good:2")
    wire.deliver(connect())
    bystander.deliver(connect())
    wire.conn.received(b"SEND\ndestination:/queue/a\nno-colon-here\n\nx\x00")
    await until(lambda: wire.state == "closed")
    assert wire.commands() == ["CONNECTED", "ERROR"]
    await until(lambda: server.connection_count == 1)
    bystander.deliver(Frame("SEND", {"destination": "/queue/a", "receipt": "r"}))
    await until(lambda: bystander.commands() == ["CONNECTED", "RECEIPT"])


async def test_the_connection_limit_holds_for_any_transport() -> None:
    _, server = await serving(max_connections=1)
    first, second = server.accept("a:1"), server.accept("b:2")
    await until(lambda: second.state == "closed")
    assert second.frames()[0].headers["message"] == "too many connections"
    first.deliver(connect())
    await until(lambda: first.commands() == ["CONNECTED"])
    assert server.connection_count == 1


async def test_a_large_message_of_small_frames_is_parsed_a_chunk_at_a_time() -> None:
    # 1.5 MiB at once is more than the parser may hold unparsed (max_frame_size + 1 MiB), but
    # the connection feeds it in chunks and keeps the rest while its frame queue is full.
    _, server = await serving(max_frame_size=1024, max_pending_frames=100)
    wire = server.accept("p:1")
    wire.deliver(connect())
    # 1,600 frames near the frame limit rather than 10,000 small ones: the same 1.6 MiB, less work
    # for a loaded machine (the wait is generous: this checks what arrives, not how fast).
    sends = [Frame("SEND", {"destination": "/queue/c", "receipt": str(i)}, b"x" * 960) for i in range(1_600)]
    wire.deliver(*sends)
    assert not wire.reading  # the frame queue filled: the rest waits, unparsed
    await until(lambda: len(wire.messages) == 1_601, timeout=60.0)
    assert [f.headers.get("receipt-id") for f in wire.frames()[1:]] == [str(i) for i in range(1_600)]
    assert wire.reading and wire.state == "open"


async def test_a_connection_with_many_frames_lets_the_loop_run_between_slices() -> None:
    _, server = await serving(work_slice_ms=0.01)
    busy = server.accept("busy:1")
    busy.deliver(connect())
    await until(lambda: len(busy.messages) == 1)
    turns = 0

    async def ticker() -> None:
        nonlocal turns
        while True:
            await asyncio.sleep(0)
            turns += 1

    task = asyncio.ensure_future(ticker())
    busy.deliver(*(Frame("SEND", {"destination": "/queue/m", "receipt": str(i)}) for i in range(900)))
    await until(lambda: len(busy.messages) == 901)
    task.cancel()
    assert turns > 10  # without yielding, the reader would have handled all 900 in one turn


def partial_send(size: int, announced: int) -> bytes:
    return b"SEND\ndestination:/queue/m\ncontent-length:%d\n\n" % announced + b"p" * size


async def test_a_partial_frame_past_the_connection_limit_pauses_reading_then_is_refused() -> None:
    _, server = await serving(memory_budget=4 * 1024 * 1024, connection_memory_limit=64 * 1024,
                              producer_flow_control_timeout=0.3)
    wire = server.accept("p:1")
    wire.deliver(connect())
    await until(lambda: wire.commands() == ["CONNECTED"])
    wire.conn.received(partial_send(100 * 1024, 200 * 1024))
    assert not wire.reading  # its share is full: the transport stops reading it
    await until(lambda: wire.state == "closed")
    error = wire.frames()[-1]
    assert error.command == "ERROR" and error.headers["message"] == (
        "memory limit reached (limits.connection_memory_limit)")
    assert b"holds 100 KiB of its 64 KiB" in error.body
    assert server.memory.used == 0  # its bytes were given back with it
    await server.stop(grace=1.0)


async def test_a_connection_paused_by_the_full_pool_reads_again_once_room_comes_back() -> None:
    # 2 MiB budget: frames of all connections together may hold 1 MiB.
    _, server = await serving(memory_budget=2 * 1024 * 1024, connection_memory_limit=1024 * 1024,
                              producer_flow_control_timeout=30)
    first, second = server.accept("a:1"), server.accept("b:2")
    for wire in (first, second):
        wire.deliver(connect())
    await until(lambda: first.commands() == second.commands() == ["CONNECTED"])
    first.conn.received(partial_send(700 * 1024, 700 * 1024 + 10))
    second.conn.received(partial_send(400 * 1024, 500 * 1024))
    assert not second.reading and server.memory.inbound.used > 1024 * 1024
    first.conn.received(b"p" * 10 + b"\0")  # the first frame completes and is handled: room again
    await until(lambda: second.reading)
    assert second.state == "open" and [f.command for f in second.frames()] == ["CONNECTED"]
    await server.stop(grace=1.0)
