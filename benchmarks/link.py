"""One raw STOMP connection for the benchmarks: pipelined writes, frames parsed by our sans-I/O codec.

Deliberately thin so that it is faster than any broker it measures: no reconnects, no bookkeeping, no
background tasks. SEND frames on the hot path are built from a template that `encode()` produced once;
only digit-valued headers are appended per message, which need no escaping (STOMP 1.2, "Value Encoding").
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time

from transports.stomp import Frame, StompParser, encode

READ_CHUNK = 1 << 16
_PLAIN = re.compile(r"[A-Za-z0-9_.:-]{1,200}")  # nothing STOMP 1.2 would escape
# Pipelined writers drain once the transport buffers more than this, so memory stays bounded.
WRITE_HIGH_WATER = 1 << 18
VERSION = "1.2"


class LinkError(Exception):
    """The peer refused us, sent an ERROR, closed, or did not answer in time."""


class StompLink:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str) -> None:
        self.reader = reader
        self.writer = writer
        self.host = host
        self.parser = StompParser(max_frame_size=16 * 1024 * 1024)
        self.parser.version = VERSION
        self.server: str | None = None
        self.disconnected = False  # a DISCONNECT was receipted: every earlier frame was handled

    @classmethod
    async def open(
        cls,
        host: str,
        port: int,
        login: str | None = None,
        passcode: str | None = None,
        timeout: float = 5.0,
        local_addr: tuple[str, int] | None = None,
    ) -> StompLink:
        """Connect and complete the STOMP handshake (heart-beats off: the benchmarks never idle).

        `local_addr` picks the source address (e.g. 127.0.0.3), for brokers that limit per address.
        """
        connecting = asyncio.open_connection(host, port, local_addr=local_addr)
        reader, writer = await asyncio.wait_for(connecting, timeout)
        link = cls(reader, writer, host)
        try:
            headers = {"accept-version": VERSION, "host": host, "heart-beat": "0,0"}
            if login is not None:
                headers["login"] = login
            if passcode is not None:
                headers["passcode"] = passcode
            link.write(encode(Frame("CONNECT", headers), VERSION))
            frame = await link.next_frame(timeout)
            if frame is None or frame.command != "CONNECTED":
                raise LinkError(f"{host}:{port} answered CONNECT with {_describe(frame)}")
            link.server = frame.get("server")
        except BaseException:
            link.abort()
            raise
        return link

    def write(self, data: bytes) -> None:
        self.writer.write(data)

    def send(self, frame: Frame) -> None:
        self.writer.write(encode(frame, VERSION))

    def ack(self, ack_id: str) -> None:
        """ACK in 1.2 form (`id` = the MESSAGE's `ack` header); plain ids skip the general encoder."""
        if _PLAIN.fullmatch(ack_id):
            self.writer.write(b"ACK\nid:%s\n\n\0" % ack_id.encode("ascii"))
        else:
            self.send(Frame("ACK", {"id": ack_id}))

    async def drain_if_full(self) -> None:
        if self.writer.transport.get_write_buffer_size() > WRITE_HIGH_WATER:
            await self.writer.drain()

    async def next_frame(self, timeout: float | None = None) -> Frame | None:
        """The next frame; None if the peer closed. LinkError on timeout.

        Hot loops pass no timeout and bound their whole run instead: a timer per read costs ~10 us.
        """
        frame = self.parser.next_frame()
        if frame is not None:
            return frame
        if timeout is None:
            return await self._read_frame()
        try:
            async with asyncio.timeout(timeout):
                return await self._read_frame()
        except TimeoutError:
            raise LinkError(f"no frame from {self.host} within {timeout} s") from None

    async def _read_frame(self) -> Frame | None:
        while True:
            data = await self.reader.read(READ_CHUNK)
            if not data:
                return None
            self.parser.feed(data)
            frame = self.parser.next_frame()
            if frame is not None:
                return frame

    async def wait_receipt(self, receipt_id: str, timeout: float | None) -> None:
        """Read until RECEIPT `receipt_id`; MESSAGE frames arriving meanwhile are dropped."""
        while True:
            frame = await self.next_frame(timeout)
            if frame is None or frame.command == "ERROR":
                raise LinkError(f"waiting for receipt {receipt_id}: got {_describe(frame)}")
            if frame.command == "RECEIPT" and frame.get("receipt-id") == receipt_id:
                return

    async def disconnect(self, timeout: float = 5.0) -> None:
        """Graceful end (STOMP 1.2, "DISCONNECT"): the receipt proves every earlier frame was handled."""
        with contextlib.suppress(LinkError, OSError):
            self.send(Frame("DISCONNECT", {"receipt": "bye"}))
            await self.wait_receipt("bye", timeout)
            self.disconnected = True
        await self.close()

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError):
            await self.writer.wait_closed()

    def abort(self) -> None:
        self.writer.transport.abort()


def _describe(frame: Frame | None) -> str:
    if frame is None:
        return "connection closed"
    message = frame.get("message")
    # An ERROR's body says why (e.g. which setting refused us): worth keeping, in short.
    detail = frame.body[:200].decode("utf-8", "replace").strip() if frame.command == "ERROR" else ""
    return f"{frame.command}" + (f" ({message})" if message else "") + (f": {detail}" if detail else "")


class SendTemplate:
    """SEND frames for one destination: static headers encoded once, per-message digits appended."""

    def __init__(self, destination: str, size: int, persistent: bool, extra: dict[str, str] | None = None):
        headers = {"destination": destination}
        if persistent:
            headers["persistent"] = "true"
        headers.update(extra or {})
        static = encode(Frame("SEND", headers), VERSION, content_length=False)
        # encode() ends a frame without body with the blank line and NUL; keep the header lines only.
        self.head = static[: -len(b"\n\0")]
        # Printable filler: a body without NUL needs no care from any broker or client.
        self.body = (b"0123456789abcdef" * (size // 16 + 1))[:size]
        self.tail = b"content-length:%d\n\n" % size + self.body + b"\0"

    def frame(self, seq: int, receipt: str | None = None, producer_id: str | None = None) -> bytes:
        parts = [self.head, b"bench-seq:%d\nbench-ts:%d\n" % (seq, time.time_ns())]
        if producer_id is not None:
            parts.append(b"batonmq.producer-id:%s\n" % producer_id.encode("ascii"))
        if receipt is not None:
            parts.append(b"receipt:%s\n" % receipt.encode("ascii"))
        parts.append(self.tail)
        return b"".join(parts)


def latency_ms(frame: Frame, now_ns: int | None = None) -> float | None:
    """End-to-end latency from the producer's `bench-ts` header (wall clock: same host only)."""
    stamp = frame.get("bench-ts")
    if stamp is None or not stamp.isdigit():
        return None
    return ((now_ns if now_ns is not None else time.time_ns()) - int(stamp)) / 1e6
