"""STOMP 1.0/1.1/1.2 as pure functions over bytes: no sockets, no asyncio, no logging."""

from transports.stomp.frame import Frame, ProtocolError

__all__ = ["Frame", "ProtocolError"]
