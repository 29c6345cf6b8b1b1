"""A deliberately dumb STOMP peer over a raw socket: for faults no real client would commit."""

from __future__ import annotations

import socket
import time


class RawStomp:
    def __init__(self, host: str, port: int, timeout: float = 2.0, source: str | None = None) -> None:
        # `source`: the client address to connect from (127.0.0.2, ...: another host, as the broker sees it).
        self.sock = socket.create_connection((host, port), timeout=timeout,
                                             source_address=(source, 0) if source else None)
        self.buffer = b""

    def send_frame(self, command: str, headers: dict[str, str] | None = None, body: bytes = b"") -> None:
        lines = [command] + [f"{k}:{v}" for k, v in (headers or {}).items()]
        self.sock.sendall(("\n".join(lines) + "\n\n").encode() + body + b"\x00")

    def connect(self, version: str = "1.2") -> str:
        self.send_frame("CONNECT", {"accept-version": version, "host": "localhost"})
        return self.read_frame(2.0)

    def read_frame(self, timeout: float) -> str:
        """The next frame as text ('' if none arrived within `timeout` or the peer closed)."""
        deadline = time.monotonic() + timeout
        while b"\x00" not in self.buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return ""
            self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(65536)
            except (TimeoutError, OSError):
                return ""
            if not chunk:
                return ""
            self.buffer += chunk
        frame, _, self.buffer = self.buffer.partition(b"\x00")
        return frame.lstrip(b"\r\n").decode(errors="replace")

    def read_until_closed(self, timeout: float) -> tuple[bytes, bool]:
        """What is left unread and what follows, until the peer closes (True) or `timeout` passes."""
        data, self.buffer = self.buffer, b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError:
                break
            except OSError:
                return data, True
            if not chunk:
                return data, True
            data += chunk
        return data, False

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> RawStomp:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
