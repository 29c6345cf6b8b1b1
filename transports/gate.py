"""Producer flow control on the way in: a connection stops reading while the memory it may use is full.

One `MemoryGate` per connection. After every read the connection tells the gate how many bytes it
holds (`hold`: partial frame, unparsed reads, parsed frames not yet handled; the session adds its
uncommitted transactions to the same share). While that share, or one above it (all frames being
read, the whole budget: transports/memory.py), is over its limit, the gate keeps the wire's reading
paused: the client's bytes wait in its own socket buffers and then its kernel, not in our memory,
exactly as ActiveMQ's producer flow control blocks a producer. A release anywhere on the way up
(a frame handled, a message consumed, another connection gone) wakes the gate to look again.

A connection that stays blocked for `limits.producer_flow_control_timeout` seconds gets an ERROR that
names the full limit and is closed (ActiveMQ's sendFailIfNoSpaceAfterTimeout); 0 fails it at once
(sendFailIfNoSpace). Only the inbound side is gated: what the broker writes to a slow consumer is
held back by the transport's write flow control (pause_writing stops dispatch) and never refused.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from transports.memory import Share


class Gated(Protocol):
    """What the gate drives: the connection's reading, and its end."""

    def memory_pause(self, paused: bool) -> None:
        """Stop (True) or allow again (False) reading from the wire, for memory's sake."""

    def memory_refused(self, full: Share) -> None:
        """Blocked past the timeout: ERROR naming `full`, then close."""


class MemoryGate:
    def __init__(self, owner: Gated, share: Share, timeout: float, loop: asyncio.AbstractEventLoop) -> None:
        self.owner = owner
        self.share = share  # the connection's: its limit and reserve decide
        self.frames = share.share("frames being read", None)  # what `hold` sets; transactions beside it
        self.timeout = timeout
        self._loop = loop
        self.blocker: Share | None = None  # the full share we wait on; None: reading allowed
        self._listening: Share | None = None
        self._timer: asyncio.TimerHandle | None = None
        self.closed = False

    def hold(self, size: int) -> None:
        """The connection now holds `size` inbound bytes; pause or resume reading accordingly."""
        if self.closed:
            return
        # Holding less never blocks (every count on the way up fell): look only when it grew.
        grew = size > self.frames.used
        self.frames.set(size)
        if self.blocker is not None or (grew and self.share.blocked() is not None):
            self.check()

    def check(self) -> None:
        if self.closed:
            return
        full = self.share.blocked()
        if full is None:
            if self.blocker is not None:
                self.blocker = None
                self._cancel_timer()
                self._stop_listening()
                self.owner.memory_pause(False)
            return
        first = self.blocker is None
        self.blocker = full
        if first:
            if self.timeout <= 0:
                self._refuse(full)
                return
            self.owner.memory_pause(True)
            self._timer = self._loop.call_later(self.timeout, self._give_up)
        self._listen(full)

    def _listen(self, full: Share) -> None:
        if self._listening is full:
            return
        self._stop_listening()
        self._listening = full
        full.listen(self._released)

    def _released(self) -> None:
        # Called from inside the release that made room (a dispatch, a frame handled): look again on
        # the next turn, not in the middle of whoever released.
        self._listening = None
        if not self.closed:
            self._loop.call_soon(self.check)

    def _give_up(self) -> None:
        self._timer = None
        full = self.share.blocked()
        if self.closed or full is None:
            self.check()
            return
        self._refuse(full)

    def _refuse(self, full: Share) -> None:
        # The ERROR is written while the share still holds what it held: it says how much.
        self.closed = True
        self._cancel_timer()
        self._stop_listening()
        self.owner.memory_refused(full)
        self.share.close()

    def _stop_listening(self) -> None:
        if self._listening is not None:
            self._listening.unlisten(self._released)
            self._listening = None

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def close(self) -> None:
        """The connection ends: stop waiting and give its bytes back."""
        if self.closed:
            return
        self.closed = True
        self._cancel_timer()
        self._stop_listening()
        self.share.close()


class RoomWaiter:
    """Wait (at most `timeout` seconds) until `share.blocked(size)` is None: the SEND path's flow
    control (broker/engine/flow.py) for a message whose destination, or the budget, is full."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    async def wait(self, blocked: Share, timeout: float) -> bool:
        """Return once `blocked` had a release that left it under its limit (True), or at the
        timeout (False). The caller asks again: someone else may have taken the room."""
        if timeout <= 0:
            return False
        woken = self._loop.create_future()

        def released() -> None:
            if not woken.done():
                woken.set_result(None)

        blocked.listen(released)
        try:
            await asyncio.wait_for(woken, timeout)
            return True
        except TimeoutError:
            return False
        finally:
            blocked.unlisten(released)
