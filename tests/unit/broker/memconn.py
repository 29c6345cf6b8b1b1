"""An in-memory connection: a transports.base.FrameLink that is not TCP, to drive Sessions without
sockets. It records what the session writes and whether it closed."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from broker.engine.auth import Authenticator
from broker.engine.core import Broker
from broker.engine.session import Session
from config.model import BrokerConfig, Limits
from transports.base import FrameLink
from transports.stomp.codec import StompParser
from transports.stomp.frame import Frame


class MemConn:
    def __init__(self, peer: str = "mem", scheme: str = "mem",
                 peer_certificate: Mapping[str, object] | None = None) -> None:
        self.peer = peer
        self.scheme = scheme
        self.peer_certificate = peer_certificate
        self.memory = None  # the session takes a share of the broker's budget
        self.writable = True
        self.version = "1.2"
        self.sent: list[Frame] = []
        self.encoded = 0  # frames of those that came through send_encoded
        self.closed = False
        self.heartbeat: tuple[int, int] | None = None
        self.session: Session | None = None

    def send(self, frame: Frame) -> bool:
        if self.closed:
            return False
        self.sent.append(frame)
        return True

    def send_encoded(self, data: bytes) -> bool:
        """A frame the session encoded itself: parsed back with the real parser, so that tests
        see what a client would."""
        if self.closed:
            return False
        parser = StompParser()
        parser.version = self.version
        parser.feed(data)
        frame = parser.next_frame()
        assert frame is not None and parser.next_frame() is None, data
        if frame.command == "MESSAGE" and frame.body:
            del frame.headers["content-length"]  # as a Frame the session sends has none
        self.sent.append(frame)
        self.encoded += 1
        return True

    def set_version(self, version: str) -> None:
        self.version = version

    def start_heartbeat(self, send_ms: int, expect_ms: int) -> None:
        self.heartbeat = (send_ms, expect_ms)

    def close(self, error: Frame | None = None) -> None:
        if self.closed:
            return
        if error is not None:
            self.sent.append(error)
        self.closed = True
        if self.session is not None:  # as the transport would, once the socket is closed
            self.session.connection_lost(None)

    # -- test conveniences --------------------------------------------------------------------------

    def pause(self) -> None:
        self.writable = False

    def resume(self) -> None:
        self.writable = True
        assert self.session is not None
        self.session.writing_resumed()

    def take(self, command: str | None = None) -> list[Frame]:
        """Frames written since the last take (only `command` ones if given; others are kept)."""
        taken = [f for f in self.sent if command is None or f.command == command]
        self.sent = [f for f in self.sent if not (command is None or f.command == command)]
        return taken

    def errors(self) -> list[str]:
        return [f.headers["message"] for f in self.sent if f.command == "ERROR"]


class Client:
    """A session plus its MemConn, with a frame-sending shorthand."""

    def __init__(self, broker: Broker, peer: str = "mem", conn: MemConn | None = None) -> None:
        self.conn = conn or MemConn(peer)
        link: FrameLink = self.conn  # checked by mypy: MemConn is a FrameLink
        self.session = broker.handler_factory(link)
        self.conn.session = self.session

    async def frame(self, command: str, body: bytes = b"", **headers: str) -> None:
        names = {k: k.replace("activemq_", "activemq.").replace("_", "-") for k in headers}
        await self.raw(command, {names[k]: v for k, v in headers.items()}, body)

    async def raw(self, command: str, headers: dict[str, str], body: bytes = b"") -> None:
        await self.session.handle(Frame(command, headers, body))
        # Deliveries past one slice of work continue on later turns of the loop (broker/slicing.py);
        # a client that waits for its messages sees them all, so the helper lets them happen.
        await asyncio.wait_for(self.session.broker.slicer.idle(), 5)

    async def connect(self, version: str = "1.2", **headers: str) -> Frame:
        await self.frame("CONNECT", accept_version=version, host="x", **headers)
        frames = self.conn.take("CONNECTED")
        assert len(frames) == 1, self.conn.sent
        return frames[0]

    async def settle(self) -> None:
        await asyncio.wait_for(self.session.completions.idle(), 5)

    def lose(self) -> None:
        self.conn.close()

    def messages(self) -> list[Frame]:
        return self.conn.take("MESSAGE")

    def bodies(self) -> list[bytes]:
        return [f.body for f in self.messages()]


def make_broker(authenticator: Authenticator | None = None, **limits: int | float) -> Broker:
    config = BrokerConfig(name="unit", connectors=["tcp://127.0.0.1:1"], limits=Limits(**limits))
    return Broker(config, authenticator=authenticator)
