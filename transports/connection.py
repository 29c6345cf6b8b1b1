"""One client's STOMP connection, whatever carries it: the FrameLink between a Wire and a FrameHandler.

Reading: bytes go into the sans-I/O parser, FEED_CHUNK at a time and at most FEED_TURN per turn of
the event loop; complete frames wait in a bounded queue (`limits.max_pending_frames`) for one reader
task that hands them to the handler one at a time, in order. A read holds up to 256 KiB of frames,
a millisecond of parsing: the rest of it is parsed on the next turns, after the loop has served the
other connections, and the wire is not read meanwhile. When the queue is full the wire stops
reading (`pause_reading`) and the rest of a large read waits unparsed: the transport pushes back on
the client instead of our memory growing.
The reader gives the event loop back after `limits.work_slice_ms` of frames, even if more are
queued: handling a frame rarely awaits anything, so without that one busy client would hold the
loop for all of its queued frames (issue 11). Bulk reads (a large frame streaming in) also share
one allowance per turn across all connections (transports/readturns.py): past it, a bulk reader
stops reading until its turn comes, so a hundred of them cannot fill one turn with copying.

Writing: frames are encoded with the negotiated version and written to the wire. When the wire's
buffer passes its high-water mark the transport calls `pause_writing`; `writable` turns False and the
broker stops dispatching to this connection until `resume_writing` (the handler's `writing_resumed`).

Memory (docs/memory.md): what is held on the way in (unparsed reads, the partial frame, unhandled
frames) is counted in the connection's share of the budget after each read and handled frame; the
`MemoryGate` (transports/gate.py) pauses reading while it is full, then refuses with an ERROR. While
writing is paused the write buffer counts in the `outgoing` pool: that pauses dispatch, never refuses.

Heart-beats (STOMP 1.1, "Heart-beating"): an EOL is sent when nothing else was written for the send
interval (one timer per connection, re-armed after it fires, so timers never pile up). Finding dead
peers is not done here but by the server's periodic scan (transports/server.py), which asks each
connection `overdue(now)`: one that has not completed CONNECT within `connect_timeout`, or from which
no byte arrived within `heartbeat_grace` × the expected interval, is closed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Mapping

from config.model import Limits
from transports.base import FrameHandler, Wire, error_frame, flatten_headers
from transports.gate import MemoryGate
from transports.memory import MemoryBudget, Share, refusal
from transports.readturns import BULK_READ, turns_for
from transports.stomp.codec import HEARTBEAT, StompParser, encode
from transports.stomp.frame import Frame, ProtocolError

log = logging.getLogger(__name__)

CLOSE_LINGER = 5.0  # seconds a closing wire may take to flush before it is aborted
# Why a connection ended (`close_reason`), as the server counts them; a fixed set, so metrics stay bounded.
CONNECT_TIMEOUT = "connect_timeout"
HEARTBEAT_TIMEOUT = "heartbeat_timeout"
FEED_CHUNK = 64 * 1024  # bytes given to the parser at once, frames taken out in between
FEED_TURN = 64 * 1024  # bytes parsed per turn of the loop (about 0.25 ms of 1 KiB frames)
MEMORY_LIMIT = "memory_limit"  # close_reason: blocked past the flow-control timeout
FRAME_OVERHEAD = 200  # counted per parsed frame besides its body: the Frame and its header dict


class Connection:
    def __init__(self, limits: Limits, on_made: Callable[[Connection], FrameHandler | None],
                 on_lost: Callable[[Connection], None], scheme: str = "tcp",
                 memory: MemoryBudget | None = None) -> None:
        self.limits = limits
        self.budget = memory if memory is not None else MemoryBudget.from_limits(limits)
        self.scheme = scheme
        self._on_made = on_made
        self._on_lost = on_lost
        self.peer = "?"
        self.address = "?"  # the peer's host alone: what the per-address connection cap counts
        self.peer_certificate: Mapping[str, object] | None = None
        self.version = "1.2"
        self.writable = True
        self.closing = False
        self.handler: FrameHandler | None = None
        self.wire: Wire | None = None
        self.parser = StompParser(limits.max_frame_size, limits.max_header_count, limits.max_header_length)
        self._frames: deque[Frame | ProtocolError] = deque()
        self._unfed: deque[memoryview] = deque()  # read but not yet parsed: the frame queue is full
        self._wakeup = asyncio.Event()
        self._reading_paused = False  # the frame queue is full, or read bytes wait for the next turn
        self._feed_scheduled = False  # a later turn parses the rest of what was read
        self._memory_paused = False  # the gate: our memory share (or the budget) is full
        self._bulk = False  # the last read was a bulk read (transports/readturns.py)
        self._turn_waiting = False  # in line for the loop's read allowance
        self._unfed_bytes = 0
        self._frame_bytes = 0  # bodies (+ FRAME_OVERHEAD each) of the queued frames
        self._reader: asyncio.Task[None] | None = None
        self._timers: dict[str, asyncio.TimerHandle] = {}  # heart-beat send, close linger
        self._last_rx = self._last_tx = self.opened_at = 0.0
        self.established = False  # CONNECTED was sent (start_heartbeat)
        self._expect = 0.0  # seconds between the client's heart-beats; 0: none expected
        self.close_reason: str | None = None  # set by whoever closes us; None: the peer went away
        # Kept: each asyncio.get_running_loop() is a getpid() system call (its fork check), and
        # send() and received() run once per frame.
        self._loop = asyncio.get_running_loop()
        self._turns = turns_for(self._loop)
        self.lost = self._loop.create_future()
        self.memory: Share = self.budget.connection("?")  # the session counts transactions here too
        self._gate = MemoryGate(self, self.memory, limits.producer_flow_control_timeout, self._loop)
        self._outgoing: Share | None = None  # our write buffer, counted while writing is paused

    # -- called by the transport --------------------------------------------------------------------

    def open(self, wire: Wire, peer: str, certificate: Mapping[str, object] | None = None) -> None:
        """The wire is up: ask the server for a handler and start reading frames."""
        self.wire = wire
        self.peer = peer
        self.address = peer.rsplit(":", 1)[0] if ":" in peer else peer  # "::1:5000" -> "::1"
        self.peer_certificate = certificate
        self.memory.name = f"connection {peer}"
        loop = self._loop
        self._last_rx = self._last_tx = self.opened_at = loop.time()
        self.handler = self._on_made(self)
        if self.handler is not None and not self.closing:
            self._reader = loop.create_task(self._read_loop(), name=f"stomp-reader {self.peer}")

    def received(self, data: bytes) -> None:
        """Bytes from the peer: a piece of a stream, or a whole message (one frame or a heart-beat)."""
        self._last_rx = self._loop.time()
        if self.closing or not self._frames_allowed():
            return
        size = len(data)
        self._unfed.append(memoryview(data))
        self._unfed_bytes += size
        self._bulk = size >= BULK_READ
        over = self._bulk and not self._turns.spend(size)
        if not self._feed_scheduled:
            self._feed()
        if over:  # the loop read enough bulk this turn: read again when our turn comes
            self._pause_reading()
            self._resume_if_room()
        self._gate.hold(self._holding())

    def connection_lost(self, exc: BaseException | None) -> None:
        self.closing = True
        self.writable = False
        self._cancel_timers()
        self._wakeup.set()
        self._gate.close()
        self._count_outgoing(False)
        self._drop_input()
        if not self.lost.done():
            self.lost.set_result(None)
        self._on_lost(self)
        if self.handler is not None:
            handler, self.handler = self.handler, None
            try:
                handler.connection_lost(exc)
            except Exception:
                log.exception("connection %s: handler failed on connection loss", self.peer)

    def pause_writing(self) -> None:
        self.writable = False
        self._count_outgoing(True)

    def resume_writing(self) -> None:
        self._count_outgoing(False)
        if self.closing:
            return
        self.writable = True
        if self.handler is not None:
            self.handler.writing_resumed()

    # -- reading ------------------------------------------------------------------------------------

    def _frames_allowed(self) -> bool:
        return not (self._frames and isinstance(self._frames[-1], ProtocolError))

    def _feed(self) -> None:
        """Parse up to FEED_TURN of the held bytes, a chunk at a time, while the frame queue has
        room; pause reading while bytes are left, and parse them on the next turn if there is room."""
        unfed, limit = self._unfed, self.limits.max_pending_frames
        allowance = FEED_TURN
        while unfed and allowance > 0 and len(self._frames) < limit and self._frames_allowed():
            view = unfed[0]
            if len(view) > FEED_CHUNK:
                unfed[0], view = view[FEED_CHUNK:], view[:FEED_CHUNK]
            else:
                unfed.popleft()
            self._unfed_bytes -= len(view)
            allowance -= len(view)
            try:
                self.parser.feed(view)
            except ProtocolError as error:
                self._queue_error(error)
                return
            self._pull_frames()
        if unfed:
            self._pause_reading()
            if allowance <= 0 and not self._feed_scheduled:
                self._feed_scheduled = True
                self._loop.call_soon(self._feed_later)

    def _feed_later(self) -> None:
        """A later turn: parse more of what was read, and read the wire again once all of it is."""
        self._feed_scheduled = False
        if self.closing:
            return
        self._feed()
        self._resume_if_room()
        self._gate.hold(self._holding())

    def _resume_if_room(self) -> None:
        """Read the wire again if nothing read waits unparsed and the frame queue has room; a bulk
        reader waits in line while the loop's read allowance for this turn is spent."""
        if not self._room_to_read():
            return
        if self._bulk and not self._turns.may_read():
            if not self._turn_waiting:
                self._turn_waiting = True
                self._turns.wait(self._turn_come)
            return
        self._resume_wire()

    def _turn_come(self) -> None:
        self._turn_waiting = False
        if self._room_to_read():
            self._resume_wire()

    def _room_to_read(self) -> bool:
        return (self._reading_paused and not self.closing and not self._unfed and not self._feed_scheduled
                and len(self._frames) < self.limits.max_pending_frames and self._frames_allowed())

    def _resume_wire(self) -> None:
        self._reading_paused = False
        # Beats could not reach us while we did not read: silence counts from now.
        self._last_rx = self._loop.time()
        if self.wire is not None and not self._memory_paused:
            self.wire.resume_reading()

    def _pull_frames(self) -> None:
        """Move parsed frames into the bounded queue; stop reading the wire while it is full."""
        try:
            frames, next_frame, limit = self._frames, self.parser.next_frame, self.limits.max_pending_frames
            queued = len(frames)
            while len(frames) < limit:
                frame = next_frame()
                if frame is None:
                    break
                frames.append(frame)
                self._frame_bytes += len(frame.body) + FRAME_OVERHEAD
            else:
                self._pause_reading()
            if len(frames) > queued:
                self._wakeup.set()
        except ProtocolError as error:
            self._queue_error(error)

    def _queue_error(self, error: ProtocolError) -> None:
        # Frames already parsed are still handled (their receipts are due); then ERROR and close.
        self._frames.append(error)
        self._wakeup.set()
        self._pause_reading()

    def _pause_reading(self) -> None:
        if not self._reading_paused and self.wire is not None and not self.wire.is_closing():
            self._reading_paused = True
            if not self._memory_paused:
                self.wire.pause_reading()

    def _holding(self) -> int:  # inbound bytes held now: unparsed reads, the parser's, queued frames
        return self._unfed_bytes + self.parser.buffered + self._frame_bytes

    # -- memory (the gate calls these) --------------------------------------------------------------

    def memory_pause(self, paused: bool) -> None:
        changed, self._memory_paused = paused != self._memory_paused, paused
        if not changed or self._reading_paused or self.wire is None or self.wire.is_closing():
            return  # the frame queue's pause (or the end) holds the wire either way
        if paused:
            self.wire.pause_reading()
        elif self._bulk and not self._turns.may_read():
            self._reading_paused = True  # the wire stays paused, now until our turn to read
            self._resume_if_room()
        else:
            self._last_rx = self._loop.time()  # beats could not reach us while we did not read
            self.wire.resume_reading()

    def memory_refused(self, full: Share) -> None:
        timeout = self.limits.producer_flow_control_timeout
        log.warning("connection %s: refused after %gs: %s", self.peer, timeout, full.full_text())
        self.close_reason = MEMORY_LIMIT
        error = error_frame(*refusal(full, timeout))  # says how much was held: before the drop
        self._drop_input()
        self.close(error)

    def _drop_input(self) -> None:
        """Let go of what was read and not handled now: we may linger in reference cycles until a
        full garbage collection, our buffers must not (RSS)."""
        self._frames.clear()
        self._unfed.clear()
        self._unfed_bytes = self._frame_bytes = 0
        self.parser = StompParser(self.limits.max_frame_size, self.limits.max_header_count,
                                  self.limits.max_header_length)

    def _count_outgoing(self, paused: bool) -> None:
        """While writing is paused, the transport's buffer counts in the budget; never a refusal."""
        if paused and self.wire is not None and not self.closing:
            if self._outgoing is None:
                self._outgoing = self.budget.outgoing.share(f"write buffer of {self.peer}", None)
            self._outgoing.set(self.wire.write_buffer_size())
        elif self._outgoing is not None:
            self._outgoing.close()
            self._outgoing = None

    async def _read_loop(self) -> None:
        # perf_counter, not loop.time(): uvloop's clock only moves between turns of the loop.
        slice_seconds = self.limits.work_slice_ms / 1000
        slice_end = time.perf_counter() + slice_seconds
        refill_at = self.limits.max_pending_frames // 2
        while not self.closing:
            if not self._frames:
                self._wakeup.clear()
                await self._wakeup.wait()
                slice_end = time.perf_counter() + slice_seconds
                continue
            item = self._frames.popleft()
            if isinstance(item, ProtocolError):
                self.close(error_frame(str(item)))
                return
            # Refilled once half the queue is handled, not after each frame: the same parsing, a
            # fraction of the calls around it.
            if self._reading_paused and len(self._frames) <= refill_at and self._frames_allowed():
                self._pull_frames()
                if not self._feed_scheduled:
                    self._feed()
                self._resume_if_room()
            self._frame_bytes -= len(item.body) + FRAME_OVERHEAD
            assert self.handler is not None
            try:  # the handler awaited here, not in a coroutine of ours: one coroutine per frame less
                await self.handler.handle(item)
            except ProtocolError as error:
                self.close(error_frame(str(error)))
            except Exception:
                log.exception("connection %s: handler failed on %s", self.peer, item.command)
                self.close(error_frame("internal error", "the broker failed to handle this frame"))
            self._gate.hold(self._holding())
            if time.perf_counter() >= slice_end:
                await asyncio.sleep(0)  # let the loop read and answer the other clients
                slice_end = time.perf_counter() + slice_seconds

    # -- writing ------------------------------------------------------------------------------------

    def set_version(self, version: str) -> None:
        self.version = version
        self.parser.version = version

    def send(self, frame: Frame) -> bool:
        """Encode and write; False if the connection is closing (the frame is dropped)."""
        if self.closing or self.wire is None:
            return False
        try:
            data = encode(frame, self.version)
        except ValueError:
            # A header this version cannot carry (e.g. a newline for a 1.0 client): flatten it.
            data = encode(flatten_headers(frame), self.version)
        return self.send_encoded(data)

    def send_encoded(self, data: bytes) -> bool:
        """Write one frame encoded already (with this connection's version); False if closing."""
        if self.closing or self.wire is None:
            return False
        self.wire.write(data)
        self._last_tx = self._loop.time()
        if self._outgoing is not None:  # writing is paused: what we add waits in the buffer
            self._outgoing.charge(len(data))
        return True

    def close(self, error: Frame | None = None) -> None:
        """Send `error` (if any), flush, close; abort if the peer does not read within CLOSE_LINGER."""
        if self.closing or self.wire is None:
            return
        if self.close_reason is None:
            self.close_reason = "error" if error is not None else "closed"
        if error is not None:
            self.send(error)
        self.closing = True
        self._wakeup.set()
        self._cancel_timers()
        wire = self.wire
        wire.close()
        self._timers["linger"] = self._loop.call_later(CLOSE_LINGER, wire.abort)

    def abort(self) -> None:
        """Drop the connection at once, unsent bytes included (lock loss, shutdown stragglers)."""
        if self.close_reason is None:
            self.close_reason = "aborted"
        self.closing = True
        self._wakeup.set()
        if self.wire is not None:
            self.wire.abort()

    async def finish(self, timeout: float) -> None:
        """Graceful stop: read nothing new, let the frames already read be handled and their work
        finish (receipts sent), then close. Bounded by `timeout`."""
        self._pause_reading()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self._frames and not self.closing and loop.time() < deadline:
            await asyncio.sleep(0.01)  # bounded poll: the reader task drains the queue
        if self.handler is not None and not self.closing:
            try:
                await asyncio.wait_for(self.handler.finish(), max(0.0, deadline - loop.time()))
            except TimeoutError:
                log.warning("connection %s: pending work not finished within %.1fs", self.peer, timeout)
        self.close()

    def cancel_reader(self) -> None:
        if self._reader is not None and not self._reader.done():
            self._reader.cancel()

    # -- heart-beats --------------------------------------------------------------------------------

    def start_heartbeat(self, send_ms: int, expect_ms: int) -> None:
        """CONNECT is complete: beat every `send_ms`, expect a byte at least every `expect_ms`."""
        self.established = True
        self._expect = expect_ms / 1000
        if send_ms > 0:
            self._schedule("send", send_ms / 1000, self._send_beat)

    def _schedule(self, name: str, interval: float, tick: Callable[[float], None]) -> None:
        loop = asyncio.get_running_loop()

        def fire() -> None:
            if self.closing:
                return
            tick(interval)
            if not self.closing:
                self._timers[name] = loop.call_later(interval, fire)

        self._timers[name] = loop.call_later(interval, fire)

    def _send_beat(self, interval: float) -> None:
        now = self._loop.time()
        if now - self._last_tx >= interval * 0.5 and self.writable and self.wire is not None:
            self.wire.write(HEARTBEAT)
            self._last_tx = now

    # -- governance (asked by the server's scan) ----------------------------------------------------

    def overdue(self, now: float) -> str | None:
        """Why this connection should be closed at `now` (a *_TIMEOUT reason), or None. O(1)."""
        if self.closing:
            return None
        if not self.established:
            return CONNECT_TIMEOUT if now - self.opened_at > self.limits.connect_timeout else None
        if not self._expect or self._reading_paused or self._memory_paused:
            return None  # no beats agreed, or we stopped reading (back-pressure): beats cannot reach us
        silent = now - self._last_rx > self._expect * self.limits.heartbeat_grace
        return HEARTBEAT_TIMEOUT if silent else None

    def expire(self, reason: str, now: float) -> None:
        """Close for `reason` from `overdue`: an ERROR for a client that never connected (it may be
        slow, not dead), a plain abort for one whose heart-beats stopped (nobody would read it)."""
        self.close_reason = reason
        if reason == CONNECT_TIMEOUT:
            timeout = self.limits.connect_timeout
            log.info("connection %s: no CONNECT within %gs; closing it", self.peer, timeout)
            self.close(error_frame("connect timeout", f"CONNECT was not completed within {timeout:g} s"))
        else:
            log.info("connection %s: no heart-beat for %.1fs; dropping it", self.peer, now - self._last_rx)
            self.abort()

    def _cancel_timers(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
