"""The broker's one memory budget, and the shares under it: pure bookkeeping (no asyncio, no I/O).

A `MemoryBudget` is the root of a small tree of `Share`s. Charging a share charges every share above
it and the budget, so the budget's `used` is everything counted anywhere in the broker:

    budget (limits.memory_budget)
      inbound   (half the budget): what connections read and hold before it is a message
        connection (limits.connection_memory_limit, each): partial frames, bytes read but not
                   parsed, frames parsed but not handled, uncommitted transactions
      outgoing  (no limit of its own): write buffers of consumers that read slower than we write
      /queue/NAME, durable:ID:NAME, /topic/NAME (limits.destination_memory_limit, each):
                   undelivered messages; a topic's share holds its non-durable subscribers' copies

A charge always succeeds: bytes that exist are counted, whatever the limits say. Whether more may be
*taken in* is a separate question, `blocked(n)`: the first share on the way up (or the budget) that
`n` more bytes would take past its limit, or None. Callers that can wait (a connection's reader, a
producer's SEND) ask it before taking in more, and `listen` for the release that may give them room.

A share may have a `reserve`: it is never blocked by the shares above it while it holds less than
that. A connection's small reserve is what keeps a well-behaved client (a frame of a few KiB)
served while hostile connections hold the rest of the budget; the reserve times the connection
limit bounds how far the budget can be overrun that way (docs/memory.md).
"""

from __future__ import annotations

from collections.abc import Callable

from config.model import Limits

MiB = 1024 * 1024
CONNECTION_RESERVE = 64 * 1024  # a connection holding less is never blocked by the pools above it
Listener = Callable[[], None]
DESTINATION_LIMIT = "limits.destination_memory_limit"
FLOW_TIMEOUT = "limits.producer_flow_control_timeout"


def describe(size: int) -> str:
    """Bytes in the unit a person would write in a config file."""
    if size >= MiB:
        return f"{size // MiB} MiB" if size % MiB == 0 else f"{size / MiB:.1f} MiB"
    return f"{size / 1024:.0f} KiB" if size >= 1024 else f"{size} B"


class Share:
    """A part of the budget: bytes counted here and in every share above; an optional limit."""

    __slots__ = ("name", "limit", "setting", "parent", "reserve", "used", "_listeners")

    def __init__(self, name: str, limit: int | None, parent: Share | None, setting: str = "",
                 reserve: int = 0) -> None:
        self.name = name
        self.limit = limit  # None: only the shares above limit it
        self.setting = setting  # the configuration key that sets `limit`, for error messages
        self.parent = parent
        self.reserve = reserve
        self.used = 0
        # A tuple until someone listens: one object fewer for the cyclic collector to walk per share
        # (a broker holds one share per destination).
        self._listeners: list[Listener] | tuple[()] = ()

    def share(self, name: str, limit: int | None, setting: str = "", reserve: int = 0) -> Share:
        """A new share under this one (a connection, a destination, a subscriber)."""
        return Share(name, limit, self, setting, reserve)

    def close(self) -> None:
        """The owner is gone: give back what it still held, wake whoever waited on it."""
        self.set(0)
        self._fire()

    # -- counting -----------------------------------------------------------------------------------

    def charge(self, size: int) -> None:
        share: Share | None = self
        while share is not None:
            share.used += size
            share = share.parent

    def release(self, size: int) -> None:
        share: Share | None = self
        while share is not None:
            share.used -= size
            if share._listeners and (share.limit is None or share.used < share.limit):
                share._fire()
            share = share.parent

    def set(self, size: int) -> None:
        """Count exactly `size` here (a buffer whose length is known, not its changes)."""
        delta = size - self.used
        if delta > 0:
            self.charge(delta)
        elif delta < 0:
            self.release(-delta)

    # -- room ---------------------------------------------------------------------------------------

    def blocked(self, size: int = 0) -> Share | None:
        """The share (this one, one above, or the budget) that `size` more bytes would overrun, or
        None. One already over its limit blocks even `size` = 0. Under its reserve, this share is
        limited by its own limit alone."""
        if self.limit is not None and self.used + size > self.limit:
            return self
        if self.used + size <= self.reserve:
            return None
        share = self.parent
        while share is not None:
            if share.limit is not None and share.used + size > share.limit:
                return share
            share = share.parent
        return None

    def listen(self, listener: Listener) -> None:
        """Call `listener` once, at the next release that leaves this share under its limit."""
        if isinstance(self._listeners, tuple):
            self._listeners = []
        self._listeners.append(listener)

    def unlisten(self, listener: Listener) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)  # type: ignore[union-attr]  # a tuple holds nothing

    def _fire(self) -> None:
        listeners, self._listeners = self._listeners, ()
        for listener in listeners:
            listener()

    def full_text(self) -> str:
        """Which limit, how large, set by what, and how much is held."""
        limit = describe(self.limit) if self.limit is not None else "no limit"
        setting = f" ({self.setting})" if self.setting else ""
        return f"{self.name} holds {describe(self.used)} of its {limit}{setting}"


def refusal(full: Share, timeout: float, flow: str = FLOW_TIMEOUT) -> tuple[str, str]:
    """The ERROR (message, detail) for a producer refused because `full` stayed full: the message
    header names the limit, so that a client (or its user) knows which setting to look at; `flow`
    is the setting that said how long to wait (`timeout`)."""
    setting = full.setting or "limits.memory_budget"
    if setting.startswith("policy["):
        what, doc = "destination full", "docs/memory.md"
    else:
        what, doc = _WHAT.get(setting, ("memory limit reached", "docs/memory.md"))
    waited = f"for {timeout:g} s" if timeout > 0 else "at once (no flow-control wait)"
    return (f"{what} ({setting})",
            f"{full.full_text()}; refused {waited} (producer flow control: {flow}, {doc})")


_WHAT = {
    DESTINATION_LIMIT: ("destination full", "docs/memory.md"),
    # Spilled non-persistent messages (docs/paging.md, "The temporary store"): a disk limit.
    "limits.temp_usage": ("temporary store full", "docs/paging.md"),
}


class MemoryBudget(Share):
    """The root share: the whole broker's memory budget, with the two pools every connection uses."""

    __slots__ = ("inbound", "outgoing", "_connection_limit", "_reserve")

    def __init__(self, limit: int, connection_limit: int, reserve: int = CONNECTION_RESERVE) -> None:
        super().__init__("the broker", limit, None, "limits.memory_budget")
        # Frames and transactions may take half the budget, never all of it: undelivered messages,
        # which consumers can free, must keep room when hostile connections hold what they can.
        self.inbound = self.share("frames being read and uncommitted transactions", limit // 2,
                                  "half of limits.memory_budget")
        self.outgoing = self.share("write buffers", None)
        self._connection_limit = connection_limit
        self._reserve = reserve

    @classmethod
    def from_limits(cls, limits: Limits) -> MemoryBudget:
        return cls(limits.budget, limits.connection_memory_limit)

    def connection(self, peer: str) -> Share:
        """The share of one connection's inbound bytes and transactions."""
        return self.inbound.share(f"connection {peer}", self._connection_limit,
                                  "limits.connection_memory_limit", self._reserve)

    def destination(self, name: str, limit: int, setting: str = DESTINATION_LIMIT) -> Share:
        """A destination's share: `setting` is the key that set `limit` (a [[policy]]'s, or the
        broker-wide one); never more than the budget."""
        return self.share(name, min(limit, self.limit or limit), setting)
