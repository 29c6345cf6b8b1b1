"""Version and heart-beat negotiation: the pure arithmetic of STOMP 1.1/1.2 "Protocol Negotiation"
and "Heart-beating", kept apart from the session that applies it."""

from __future__ import annotations

from transports.stomp.commands import VERSIONS
from transports.stomp.frame import ProtocolError

# Enough for ~115 days in milliseconds; a longer value is a typo or an attack, not a heart-beat.
_MAX_HEARTBEAT_DIGITS = 10
# accept-version lists a handful of versions; a longer header is not worth splitting.
_MAX_ACCEPT_VERSION_LENGTH = 256


def negotiate_version(accept_version: str | None) -> str | None:
    """The version to speak with a client that sent this accept-version header, or None if none fits.

    STOMP 1.1, "Protocol Negotiation": a CONNECT without accept-version is a 1.0 client; otherwise the
    server picks the highest version both sides support.
    """
    if accept_version is None:
        return "1.0"
    if len(accept_version) > _MAX_ACCEPT_VERSION_LENGTH:
        return None
    offered = {part.strip() for part in accept_version.split(",")}
    common = [version for version in VERSIONS if version in offered]
    return common[-1] if common else None


def parse_heartbeat(value: str | None) -> tuple[int, int]:
    """The two numbers of a heart-beat header "cx,cy" (milliseconds); a missing header means (0, 0)."""
    if value is None:
        return (0, 0)
    parts = value.split(",")
    if len(parts) == 2:
        first, second = (part.strip() for part in parts)
        if _is_count(first) and _is_count(second):
            return (int(first), int(second))
    raise ProtocolError(
        f"invalid heart-beat header {value[:64]!r}: expected two non-negative integers 'cx,cy'"
    )


def _is_count(text: str) -> bool:
    return text.isascii() and text.isdigit() and len(text) <= _MAX_HEARTBEAT_DIGITS


def negotiate_heartbeat(
    client: tuple[int, int], server_send_ms: int, server_recv_ms: int, maximum: int | None = None
) -> tuple[int, int]:
    """(server sends every ms, server expects every ms) for the client's (cx, cy) and our offer.

    STOMP 1.1, "Heart-beating": the client can send every cx ms and wants to receive every cy ms; the
    server can send every server_send_ms and wants to receive every server_recv_ms. In each direction
    0 on either side disables heart-beats, otherwise the interval is the larger (slower) of the two,
    clamped to `maximum`: an enabled direction never gets an interval longer than that, so a peer
    that stops beating is always found within a bounded time.
    """
    client_send, client_recv = client
    sends = 0 if server_send_ms == 0 or client_recv == 0 else max(server_send_ms, client_recv)
    expects = 0 if client_send == 0 or server_recv_ms == 0 else max(client_send, server_recv_ms)
    if maximum is not None:
        sends, expects = min(sends, maximum), min(expects, maximum)
    return (sends, expects)
