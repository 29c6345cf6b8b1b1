"""STOMP over WebSocket from Python, for the WebSocket connector's tests.

`WsStomp` is the `websockets` library's own synchronous client, the ordinary way a Python program
talks WebSocket. `RawWs` is a WebSocket client on a raw socket (the library's sans-I/O client
protocol, our reads and writes) for what an ordinary client never does: stop reading, send many
messages in one write, announce a message and never send it. STOMP frames are built and split by
hand here, not with the broker's codec.
"""

from __future__ import annotations

import socket
import time

from websockets.client import ClientProtocol
from websockets.exceptions import ConnectionClosed
from websockets.frames import Opcode
from websockets.http11 import Response
from websockets.sync.client import ClientConnection, connect
from websockets.typing import Subprotocol
from websockets.uri import parse_uri

STOMP_SUBPROTOCOLS = [Subprotocol("v10.stomp"), Subprotocol("v11.stomp"), Subprotocol("v12.stomp")]


def stomp_frame(command: str, headers: dict[str, str] | None = None, body: str | bytes = "") -> bytes:
    head = command + "\n" + "".join(f"{k}:{v}\n" for k, v in (headers or {}).items()) + "\n"
    return head.encode() + (body.encode() if isinstance(body, str) else body) + b"\x00"


def split_frame(message: str | bytes) -> tuple[str, dict[str, str], bytes]:
    """(command, headers, body) of one whole STOMP frame received as one message."""
    data = message.encode() if isinstance(message, str) else message
    assert data.endswith(b"\x00"), data[-50:]
    head, _, body = data[:-1].partition(b"\n\n")
    command, *lines = head.decode().split("\n")
    return command, dict(line.split(":", 1) for line in lines), body


class WsStomp:
    """One STOMP session over the library's client: each frame one message."""

    def __init__(self, port: int, host: str = "127.0.0.1",
                 subprotocols: list[Subprotocol] | None = STOMP_SUBPROTOCOLS, **options: object) -> None:
        # Entered as the library asks (a bare connection warns); close() leaves it.
        self.ws: ClientConnection = connect(f"ws://{host}:{port}/stomp", subprotocols=subprotocols,
                                            proxy=None, open_timeout=5, **options).__enter__()  # type: ignore[arg-type]

    def send(self, command: str, headers: dict[str, str] | None = None, body: str | bytes = "") -> None:
        self.ws.send(stomp_frame(command, headers, body).decode() if isinstance(body, str) else
                     stomp_frame(command, headers, body))

    def recv(self, timeout: float = 5.0) -> str | bytes:
        return self.ws.recv(timeout=timeout)

    def frame(self, timeout: float = 5.0) -> tuple[str, dict[str, str], bytes]:
        """The next STOMP frame, skipping heart-beats."""
        deadline = time.monotonic() + timeout
        while True:
            message = self.recv(max(0.01, deadline - time.monotonic()))
            if message not in ("\n", b"\n"):
                return split_frame(message)

    def connect(self, **headers: str) -> dict[str, str]:
        self.send("CONNECT", {"accept-version": "1.2", "host": "localhost", **headers})
        command, reply, _ = self.frame()
        assert command == "CONNECTED", reply
        return reply

    def close_code(self, timeout: float = 5.0) -> int | None:
        """Read until the broker closes: the close code it sent, -1 if it closed without a close frame,
        None if it did not close in time."""
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                self.recv(max(0.01, deadline - time.monotonic()))
        except TimeoutError:
            return None
        except ConnectionClosed as closed:
            return closed.rcvd.code if closed.rcvd is not None else -1
        return None

    def close(self) -> None:
        self.ws.close()


class RawWs:
    """A WebSocket client whose socket the test controls."""

    def __init__(self, port: int, host: str = "127.0.0.1", rcvbuf: int | None = None,
                 subprotocols: list[Subprotocol] | None = STOMP_SUBPROTOCOLS) -> None:
        self.sock = socket.socket()
        if rcvbuf is not None:  # before connect, so the TCP window starts small
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.connect((host, port))
        self.protocol = ClientProtocol(parse_uri(f"ws://{host}:{port}/"), subprotocols=subprotocols,
                                       max_size=None)
        self.protocol.send_request(self.protocol.connect())
        self._write()
        self.messages: list[bytes] = []
        self.response: Response | None = None
        while self.response is None:
            self._read(5.0)
        assert self.response.status_code == 101, self.response

    def _write(self) -> None:
        self.sock.sendall(b"".join(self.protocol.data_to_send()))

    def send_messages(self, *payloads: bytes) -> None:
        """Every payload as one text message, all in one socket write."""
        for payload in payloads:
            self.protocol.send_text(payload)
        self._write()

    def announce_text(self, length: int) -> None:
        """Send only the header of a text message of `length` bytes (RFC 6455 section 5.2: FIN and
        opcode 1, the mask bit and the 64-bit length, an all-zero masking key), never its payload."""
        self.sock.sendall(bytes([0x81, 0x80 | 127]) + length.to_bytes(8, "big") + bytes(4))

    def _read(self, timeout: float) -> bool:
        """One socket read into the protocol; False once the peer closed."""
        self.sock.settimeout(timeout)
        data = self.sock.recv(1 << 20)
        if not data:
            self.protocol.receive_eof()
            return False
        self.protocol.receive_data(data)
        for event in self.protocol.events_received():
            if isinstance(event, Response):
                self.response = event
            elif event.opcode in (Opcode.TEXT, Opcode.BINARY):
                self.messages.append(bytes(event.data))
        self._write()  # pongs, the close echo
        return True

    def read_until(self, count: int, timeout: float) -> list[bytes]:
        """Read until `count` messages (heart-beats excluded) arrived or the peer closed."""
        deadline = time.monotonic() + timeout
        while len([m for m in self.messages if m != b"\n"]) < count and time.monotonic() < deadline:
            try:
                if not self._read(max(0.01, deadline - time.monotonic())):
                    break
            except TimeoutError:
                break
        return [m for m in self.messages if m != b"\n"]

    def wait_closed(self, timeout: float) -> int | None:
        """Read until the broker closes the socket; the WebSocket close code it sent, if any."""
        deadline = time.monotonic() + timeout
        try:
            while self._read(max(0.01, deadline - time.monotonic())):
                if time.monotonic() >= deadline:
                    return None
        except TimeoutError:
            return None
        except OSError:
            pass  # reset, or our close echo met a closed socket
        close = self.protocol.close_rcvd
        return close.code if close is not None else -1

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> RawWs:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
