"""One STOMP session over one asyncio stream: frames in and out, receipt futures, MESSAGE
dispatch and heart-beats.

This layer knows nothing of subscriptions' queues or of retrying: it hands MESSAGE frames to
`on_message` and reports the end of the link once, through `on_lost`. `Client` sits on top of a
replaceable `StompConnection`, so the failover layer can swap in a new one after a reconnect.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import ssl
from collections.abc import Awaitable, Callable

from config.model import Limits
from transports.client.errors import BrokerRefused, ClientError, ConnectionLost, error_text
from transports.client.handshake import Session, accept_connected, connect_frame
from transports.stomp.codec import StompParser, encode
from transports.stomp.frame import Frame, ProtocolError

log = logging.getLogger(__name__)

READ_CHUNK = 64 * 1024
# A silent broker is declared dead after this many expected heart-beat periods (as the broker does).
HEARTBEAT_GRACE = 2.0
BEAT_EARLY = 0.5
CLOSE_TIMEOUT = 2.0

MessageHandler = Callable[[Frame], Awaitable[None]]
LostHandler = Callable[[ConnectionLost], None]


async def open_stomp(
    host: str,
    port: int,
    *,
    login: str | None = None,
    passcode: str | None = None,
    heartbeat: tuple[int, int] = (0, 0),
    client_id: str | None = None,
    timeout: float = 5.0,
    limits: Limits | None = None,
    tls: ssl.SSLContext | None = None,
) -> StompConnection:
    """TCP connect (then the TLS handshake, with `tls`), CONNECT, wait for CONNECTED; all within
    `timeout` seconds. Over TLS the broker's certificate must name `host` (also sent as SNI)."""
    limits = limits or Limits.model_validate({})
    parser = StompParser(limits.max_frame_size, limits.max_header_count, limits.max_header_length)
    secure = {"ssl": tls, "server_hostname": host, "ssl_handshake_timeout": timeout} if tls else {}
    async with asyncio.timeout(timeout):
        reader, writer = await asyncio.open_connection(host, port, **secure)  # type: ignore[arg-type]
    try:
        async with asyncio.timeout(timeout):
            writer.write(encode(connect_frame(host, login=login, passcode=passcode, heartbeat=heartbeat,
                                              client_id=client_id), version="1.0"))
            frame = await _first_frame(reader, parser)
        session = accept_connected(frame, heartbeat)
    except BaseException:
        writer.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(writer.wait_closed(), CLOSE_TIMEOUT)
        raise
    parser.version = session.version
    return StompConnection(reader, writer, parser, session, address=(host, port))


async def _first_frame(reader: asyncio.StreamReader, parser: StompParser) -> Frame:
    while True:
        frame = parser.next_frame()
        if frame is not None:
            return frame
        data = await reader.read(READ_CHUNK)
        if not data:
            raise ConnectionLost("broker closed the connection during CONNECT")
        parser.feed(data)


class StompConnection:
    """A connected STOMP session. Call `start(on_message, on_lost)` once, then write frames."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        parser: StompParser,
        session: Session,
        *,
        address: tuple[str, int],
    ) -> None:
        self.session = session
        self.address = address
        self.tls = writer.get_extra_info("ssl_object") is not None
        self._reader = reader
        self._writer = writer
        self._parser = parser
        self._receipts: dict[str, asyncio.Future[Frame]] = {}
        self._receipt_ids = itertools.count(1)
        self._tasks: set[asyncio.Task[None]] = set()
        self._on_message: MessageHandler | None = None
        self._on_lost: LostHandler | None = None
        self._loop = asyncio.get_running_loop()
        self._last_read = self._last_write = self._loop.time()
        # While a subscription's local queue is full the reader waits on purpose (back-pressure
        # through TCP); the heart-beat watchdog must not call that silence a dead broker.
        self._reader_paused = False
        self._closing = False
        self.lost: ConnectionLost | None = None

    @property
    def version(self) -> str:
        return self.session.version

    @property
    def is_open(self) -> bool:
        return self.lost is None and not self._closing

    def start(self, on_message: MessageHandler, on_lost: LostHandler) -> None:
        self._on_message, self._on_lost = on_message, on_lost
        self._spawn(self._read_loop())
        if self.session.send_every:
            self._spawn(self._beat_loop(self.session.send_every))
        if self.session.expect_every:
            self._spawn(self._watch_loop(self.session.expect_every))

    def _spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- writing ---------------------------------------------------------------------------

    def write(self, frame: Frame) -> None:
        """Queue `frame` on the socket; raise ConnectionLost if the link is gone."""
        if self.lost is not None:
            raise self.lost
        if self._closing:
            raise ConnectionLost("connection is closing")
        self._writer.write(encode(frame, version=self.session.version))
        self._last_write = self._loop.time()

    def request(self, frame: Frame) -> asyncio.Future[Frame]:
        """Write `frame` with a fresh `receipt` header; the future gets the RECEIPT frame, or a
        ClientError if the broker answers ERROR, or ConnectionLost."""
        receipt_id = f"r-{next(self._receipt_ids)}"
        frame.headers["receipt"] = receipt_id
        future: asyncio.Future[Frame] = self._loop.create_future()
        self.write(frame)
        self._receipts[receipt_id] = future
        return future

    async def drain(self) -> None:
        """Flow control: wait while the socket's write buffer is above its high-water mark."""
        if self.lost is not None:
            raise self.lost
        try:
            await self._writer.drain()
        except (ConnectionError, OSError) as exc:
            raise self._fail(ConnectionLost(f"write failed: {exc}")) from exc

    # -- reading ---------------------------------------------------------------------------

    async def _read_loop(self) -> None:
        try:
            while True:
                # Frames first: the read that brought CONNECTED may have brought more behind it.
                while self.lost is None and (frame := self._parser.next_frame()) is not None:
                    await self._dispatch(frame)
                if self.lost is not None:
                    return
                data = await self._reader.read(READ_CHUNK)
                if not data:
                    self._fail(ConnectionLost("broker closed the connection"))
                    return
                self._last_read = self._loop.time()
                self._parser.feed(data)
        except ProtocolError as exc:
            self._fail(ConnectionLost(f"broker broke the protocol: {exc}"))
        except (ConnectionError, OSError) as exc:
            self._fail(ConnectionLost(f"read failed: {exc}"))

    async def _dispatch(self, frame: Frame) -> None:
        command = frame.command
        if command == "MESSAGE":
            assert self._on_message is not None
            self._reader_paused = True
            try:
                await self._on_message(frame)
            finally:
                self._reader_paused = False
                self._last_read = self._loop.time()
        elif command == "RECEIPT":
            future = self._receipts.pop(frame.headers.get("receipt-id", ""), None)
            if future is not None and not future.done():
                future.set_result(frame)
        elif command == "ERROR":
            self._on_error(frame)
        else:
            log.warning("ignoring unexpected %s frame from %s:%d", command[:40], *self.address)

    def _on_error(self, frame: Frame) -> None:
        # STOMP 1.2 "ERROR": the server closes the connection after an ERROR, so it ends the session.
        text = error_text(frame.headers, frame.body)
        future = self._receipts.pop(frame.headers.get("receipt-id", ""), None)
        if future is not None and not future.done():
            future.set_exception(BrokerRefused(text))
        self._fail(ConnectionLost(f"broker sent ERROR: {text}", broker_error=text))

    # -- heart-beats -----------------------------------------------------------------------

    async def _beat_loop(self, every: float) -> None:
        # STOMP 1.2 "Heart-beating": we MUST write something at least every `every` seconds. We
        # write an EOL after half that of silence, so a late wake-up of a busy loop is no breach.
        due = every * BEAT_EARLY
        while self.is_open:
            await asyncio.sleep(max(0.01, self._last_write + due - self._loop.time()))
            if self.is_open and self._loop.time() - self._last_write >= due * 0.99:
                self._writer.write(b"\n")
                self._last_write = self._loop.time()

    async def _watch_loop(self, every: float) -> None:
        limit = every * HEARTBEAT_GRACE
        while self.lost is None:
            await asyncio.sleep(max(0.01, self._last_read + limit - self._loop.time()))
            if self._reader_paused:
                # Our own back-pressure, not the broker's silence; look again a period later.
                await asyncio.sleep(limit)
                continue
            silent = self._loop.time() - self._last_read
            if silent >= limit and self.lost is None:
                self._fail(ConnectionLost(f"no data or heart-beat from the broker for {silent:.1f}s"))
                return

    # -- ending ----------------------------------------------------------------------------

    def _fail(self, exc: ConnectionLost) -> ConnectionLost:
        """Record the end of the link once: fail every receipt, close the socket, tell the owner."""
        if self.lost is not None:
            return self.lost
        clean = self._closing
        self.lost = exc
        for future in self._receipts.values():
            if not future.done():
                future.set_exception(exc)
        self._receipts.clear()
        self._writer.close()
        for task in self._tasks:
            if task is not asyncio.current_task():
                task.cancel()
        if not clean and self._on_lost is not None:
            log.debug("connection to %s:%d lost: %s", *self.address, exc)
            # Soon, not now: the receipt futures' own callbacks (scheduled above) settle first, so a
            # send refused by ERROR reports the broker's message rather than the connection loss.
            self._loop.call_soon(self._on_lost, exc)
        return exc

    async def disconnect(self, timeout: float = 5.0) -> str | None:
        """DISCONNECT with a receipt (so every earlier frame was handled), then close.
        Returns None once the receipt arrived, else why it did not."""
        problem: str | None = str(self.lost) if self.lost is not None else "connection is closing"
        if self.is_open:
            try:
                future = self.request(Frame("DISCONNECT"))
                self._closing = True
                await asyncio.wait_for(future, timeout)
                problem = None
            except ClientError as exc:
                problem = str(exc)
            except TimeoutError:
                problem = f"no answer within {timeout}s"
        await self.close()
        return problem

    async def close(self) -> None:
        """Close the socket at once; idempotent. Never reports `on_lost`."""
        self._closing = True
        self._fail(ConnectionLost("connection closed by the client"))
        tasks = [t for t in self._tasks if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=CLOSE_TIMEOUT)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._writer.wait_closed(), CLOSE_TIMEOUT)
