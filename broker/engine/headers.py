"""What a client asks for in CONNECT and SUBSCRIBE headers, checked: pure functions of the frame.

CONNECT: the protocol version (STOMP 1.2, "Protocol Negotiation") and the heart-beat intervals
(the larger of offer and request; 0 disables, from STOMP 1.1 on). SUBSCRIBE: ActiveMQ's
`activemq.prefetchSize`, bounded, and `activemq.maximumPendingMessageLimit`.
"""

from __future__ import annotations

from broker.engine.errors import ClientError
from config.model import Limits
from transports.stomp.frame import Frame
from transports.stomp.negotiate import negotiate_heartbeat, negotiate_version, parse_heartbeat

SUPPORTED = "1.0,1.1,1.2"
MAX_PREFETCH = 100_000


def negotiate(frame: Frame, limits: Limits) -> tuple[str, int, int]:
    """(version, we send beats every ms, we expect beats every ms) for a CONNECT or STOMP frame."""
    version = negotiate_version(frame.get("accept-version"))
    if version is None:
        raise ClientError("unsupported protocol version", f"supported versions are {SUPPORTED}",
                          {"version": SUPPORTED})
    if version == "1.0":  # heart-beating exists from STOMP 1.1 on
        return version, 0, 0
    offer = parse_heartbeat(frame.get("heart-beat"))
    sends, expects = negotiate_heartbeat(offer, limits.heartbeat_send_ms, limits.heartbeat_recv_ms,
                                         limits.max_heartbeat_ms)
    return version, sends, expects


def pending_limit(frame: Frame) -> int:
    """ActiveMQ's activemq.maximumPendingMessageLimit: -1 (keep all, the default) or a count >= 0."""
    text = frame.get("activemq.maximumPendingMessageLimit")
    if text is None or text == "":
        return -1
    try:
        value = int(text)
    except ValueError:
        value = -2
    if value < -1:
        raise ClientError("invalid maximumPendingMessageLimit",
                          "activemq.maximumPendingMessageLimit must be -1 or a count of messages")
    return value


def prefetch_size(frame: Frame, default: int) -> int:
    text = frame.get("activemq.prefetchSize")
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= MAX_PREFETCH:
        raise ClientError("invalid prefetch", f"activemq.prefetchSize must be 1..{MAX_PREFETCH}")
    return value
