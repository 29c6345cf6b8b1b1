"""The WebSocket connector for STOMP (`ws://`, and `wss://` given an SSLContext), as stompjs speaks it.

`WsWire` is an asyncio Protocol like tcp.StreamWire with the `websockets` library's sans-I/O
`ServerProtocol` between the socket and the Connection: the library does the HTTP upgrade, the
framing, masking, ping/pong and the closing handshake; we keep the socket, so flow control is the
asyncio transport's own (write-buffer marks, pause_reading) exactly as over TCP. Each WebSocket data
frame's payload goes to `Connection.received` as it arrives (STOMP's parser is a stream parser, so a
STOMP frame split over several messages, or several STOMP frames in one, both work), and each Wire
`write` (one STOMP frame or one heart-beat EOL) goes out as one message: a text message when it is
UTF-8, which is what stompjs and the STOMP-over-WebSocket brokers send, else a binary one (a body
that is not UTF-8 cannot travel in a text message, RFC 6455 section 5.6).

Bounds: one message is at most `max_frame_size` plus `MESSAGE_SLACK` bytes; past that the library
refuses it from its frame header, before reading the payload, and closes with 1009 (message too big).
A peer has `HANDSHAKE_TIMEOUT` seconds to complete the upgrade, and no more peers may be mid-upgrade
than `max_connections`. Messages already parsed when the Connection pauses reading wait here (at most
one socket read's worth) and are handed over on resume.

Subprotocols (`Sec-WebSocket-Protocol`): we pick the highest STOMP version the client offers among
`v12.stomp`, `v11.stomp`, `v10.stomp` and ActiveMQ's plain `stomp`; a client that offers none of them
is still accepted, without a subprotocol, as RabbitMQ's Web STOMP does (RFC 6455 section 4.2.2 lets a
server select none). The STOMP version itself is negotiated by CONNECT's `accept-version`, as on TCP.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections import deque
from collections.abc import Sequence
from typing import cast

from websockets.frames import Frame, Opcode
from websockets.http11 import Request
from websockets.protocol import CONNECTING, OPEN, SEND_EOF
from websockets.server import ServerProtocol
from websockets.typing import Subprotocol

from config.model import Limits
from transports.connection import Connection
from transports.server import AsyncioListener, HandlerFactory
from transports.tcp import WRITE_HIGH_WATER, WRITE_LOW_WATER

log = logging.getLogger(__name__)
# The library logs every open and close at INFO; the TCP connector logs neither. Lower it to see them.
_protocol_log = logging.getLogger(f"{__name__}.protocol")
_protocol_log.setLevel(logging.WARNING)

SUBPROTOCOLS = ("v12.stomp", "v11.stomp", "v10.stomp", "stomp")  # our preference, highest first
HANDSHAKE_TIMEOUT = 10.0  # seconds from TCP accept to a completed upgrade (the library's own default)
# A maximal STOMP frame travels with its NUL and the EOLs clients put after it: a message that much
# longer than max_frame_size still reaches the STOMP parser, which answers "frame too large".
MESSAGE_SLACK = 1024
_DATA = (Opcode.TEXT, Opcode.BINARY, Opcode.CONT)


def select_subprotocol(_: ServerProtocol, offered: Sequence[Subprotocol]) -> Subprotocol | None:
    for name in SUBPROTOCOLS:
        if name in offered:
            return Subprotocol(name)
    return None  # none offered, or none of ours: go on without one


def _is_utf8(data: bytes) -> bool:
    if data.isascii():  # the common case, checked without decoding
        return True
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


class WsWire(asyncio.Protocol):
    """One WebSocket peer: the upgrade first, then a Wire for its Connection."""

    def __init__(self, server: WsServer) -> None:
        self.server = server
        self.ws = ServerProtocol(select_subprotocol=select_subprotocol, logger=_protocol_log,
                                 max_size=server.limits.max_frame_size + MESSAGE_SLACK)
        self.transport: asyncio.Transport | None = None
        self.conn: Connection | None = None  # made once the upgrade succeeds
        self.peer = "?"
        self._held: deque[bytes] = deque()  # payloads parsed while the Connection paused reading
        self._paused = False
        self._timer: asyncio.TimerHandle | None = None

    # -- asyncio.Protocol: the transport calls these ------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's does not subclass it
        self.transport.set_write_buffer_limits(WRITE_HIGH_WATER, WRITE_LOW_WATER)
        peer = transport.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        if not self.server.upgrade_started(self):
            log.warning("refusing %s: %d WebSocket upgrades already under way", self.peer,
                        self.server.limits.max_connections)
            self.transport.abort()
            return
        self._timer = asyncio.get_running_loop().call_later(HANDSHAKE_TIMEOUT, self._upgrade_timed_out)

    def data_received(self, data: bytes) -> None:
        self.ws.receive_data(data)
        self._flush()
        for event in self.ws.events_received():
            if isinstance(event, Request):
                self._upgrade(event)
            elif isinstance(event, Frame) and event.opcode in _DATA and event.data:
                self._deliver(bytes(event.data))

    def eof_received(self) -> bool:
        self.ws.receive_eof()
        self._flush()
        return False  # the asyncio transport closes our side

    def connection_lost(self, exc: Exception | None) -> None:
        self._upgrade_over()
        if self.conn is not None:
            self.conn.connection_lost(exc)

    def pause_writing(self) -> None:
        if self.conn is not None:
            self.conn.pause_writing()

    def resume_writing(self) -> None:
        if self.conn is not None:
            self.conn.resume_writing()

    # -- the upgrade --------------------------------------------------------------------------------

    def _upgrade(self, request: Request) -> None:
        response = self.ws.accept(request)
        self.ws.send_response(response)
        self._flush()
        self._upgrade_over()
        if response.status_code != 101:
            return  # an HTTP error answer; the library half-closed, and _flush closed the socket
        assert self.transport is not None
        self.conn = self.server.new_connection()
        self.conn.open(self, self.peer, self.transport.get_extra_info("peercert"))

    def _upgrade_over(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.server.upgrade_ended(self)

    def _upgrade_timed_out(self) -> None:
        self._timer = None
        if self.conn is None and self.transport is not None:
            log.info("WebSocket peer %s: no upgrade within %.0fs; dropping it", self.peer, HANDSHAKE_TIMEOUT)
            self.transport.abort()

    # -- reading: payloads to the Connection, held while it pauses ----------------------------------

    def _deliver(self, payload: bytes) -> None:
        if self.conn is None:
            return  # data frames before the upgrade completed: the library failed the connection
        if self._paused or self._held:
            self._held.append(payload)
        else:
            self.conn.received(payload)

    def _release(self) -> None:
        while self._held and not self._paused and self.conn is not None:
            self.conn.received(self._held.popleft())

    # -- Wire: the Connection calls these -----------------------------------------------------------

    def write(self, data: bytes) -> None:
        if self.ws.state is not OPEN or self.is_closing():
            return  # closing: the frame is dropped, as a closing TCP transport drops it
        if _is_utf8(data):
            self.ws.send_text(data)
        else:
            self.ws.send_binary(data)
        self._flush()

    def write_buffer_size(self) -> int:
        return self.transport.get_write_buffer_size() if self.transport is not None else 0

    def pause_reading(self) -> None:
        self._paused = True
        if self.transport is not None:
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        self._paused = False
        if self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()
        # Not from inside the Connection's call: handing payloads over may pause us again.
        asyncio.get_running_loop().call_soon(self._release)

    def is_closing(self) -> bool:
        return self.transport is None or self.transport.is_closing()

    def close(self) -> None:
        """Start the closing handshake (1000); the client answers and the socket closes."""
        if self.ws.state is OPEN:
            self.ws.send_close(1000)
            self._flush()
            # The client's answer must be read even if the Connection paused reading (an ERROR after
            # a full queue): data after our close frame is dropped, the Connection is closing.
            self._held.clear()
            if self._paused and self.transport is not None and not self.transport.is_closing():
                self._paused = False
                self.transport.resume_reading()
        elif self.transport is not None and self.ws.state is CONNECTING:
            self.transport.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def _flush(self) -> None:
        """Write what the library has for the peer; its end-of-stream mark closes the socket."""
        if self.transport is None:
            return
        for chunk in self.ws.data_to_send():
            if chunk == SEND_EOF:
                self.transport.close()  # flushes what is buffered first
            elif not self.transport.is_closing():
                self.transport.write(chunk)


class WsServer(AsyncioListener):
    """`ws://HOST:PORT`; `wss://` when built with an SSLContext (the TLS settings' context)."""

    def __init__(self, host: str, port: int, handler_factory: HandlerFactory, limits: Limits,
                 scheme: str = "ws", context: ssl.SSLContext | None = None) -> None:
        super().__init__(host, port, handler_factory, limits, scheme)
        if scheme == "wss" and context is None:
            raise ValueError("a wss:// connector needs the TLS settings (a certificate and its key)")
        self.ssl_context = context
        self._upgrading: set[WsWire] = set()

    def upgrade_started(self, wire: WsWire) -> bool:
        """Count a peer mid-upgrade; False (refuse it) when `max_connections` already are."""
        if len(self._upgrading) >= self.limits.max_connections:
            return False
        self._upgrading.add(wire)
        return True

    def upgrade_ended(self, wire: WsWire) -> None:
        self._upgrading.discard(wire)

    async def _listen(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: WsWire(self), self.host, self.port, reuse_address=True, ssl=self.ssl_context,
            ssl_handshake_timeout=HANDSHAKE_TIMEOUT if self.ssl_context is not None else None,
        )

    def _stop_listening(self) -> None:
        super()._stop_listening()
        for wire in list(self._upgrading):  # not yet a connection: nothing of theirs to finish
            wire.abort()

