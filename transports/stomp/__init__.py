"""STOMP 1.0/1.1/1.2 as pure functions over bytes: no sockets, no asyncio, no logging."""

from transports.stomp.codec import HEARTBEAT, StompParser, encode
from transports.stomp.frame import Frame, ProtocolError
from transports.stomp.negotiate import negotiate_heartbeat, negotiate_version, parse_heartbeat

__all__ = [
    "HEARTBEAT",
    "Frame",
    "ProtocolError",
    "StompParser",
    "encode",
    "negotiate_heartbeat",
    "negotiate_version",
    "parse_heartbeat",
]
