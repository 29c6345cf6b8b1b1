"""The CONNECT/CONNECTED exchange as pure functions (STOMP 1.2 "Connecting", "Heart-beating")."""

from __future__ import annotations

from dataclasses import dataclass

from transports.client.errors import ClientError, error_text
from transports.stomp.frame import Frame
from transports.stomp.negotiate import negotiate_heartbeat as stomp_negotiate_heartbeat
from transports.stomp.negotiate import parse_heartbeat

SUPPORTED_VERSIONS = ("1.0", "1.1", "1.2")
# Heart-beat values are milliseconds; anything above a day is nonsense from a hostile peer.
_MAX_HEARTBEAT_MS = 86_400_000


@dataclass(frozen=True, slots=True)
class Session:
    """What CONNECTED told us: the protocol version and the heart-beat periods in seconds
    (0.0 = off) we must send at and may expect to receive at."""

    version: str
    send_every: float
    expect_every: float
    server: str | None = None
    session: str | None = None


def connect_frame(
    host: str,
    *,
    login: str | None = None,
    passcode: str | None = None,
    heartbeat: tuple[int, int] = (0, 0),
    client_id: str | None = None,
) -> Frame:
    """CONNECT offering every version we speak. `heartbeat` = (we can send every cx ms,
    we want to receive every cy ms), as the `heart-beat` header."""
    cx, cy = heartbeat
    if not (0 <= cx <= _MAX_HEARTBEAT_MS and 0 <= cy <= _MAX_HEARTBEAT_MS):
        raise ValueError(f"heartbeat must be two milliseconds values in 0..{_MAX_HEARTBEAT_MS}")
    headers = {"accept-version": ",".join(SUPPORTED_VERSIONS), "host": host, "heart-beat": f"{cx},{cy}"}
    if login is not None:
        headers["login"] = login
    if passcode is not None:
        headers["passcode"] = passcode
    if client_id is not None:
        # ActiveMQ's convention: the client id that names durable topic subscriptions (design.md s4).
        headers["client-id"] = client_id
    return Frame("CONNECT", headers)


def negotiate_heartbeat(ours: tuple[int, int], theirs: tuple[int, int]) -> tuple[float, float]:
    """(send every, expect every) in seconds, 0.0 = off, for our (cx, cy) and the broker's (sx, sy).

    The rule is symmetric (STOMP 1.2 "Heart-beating": 0 on either side disables a direction, else
    the larger interval wins), so the codec's server-side arithmetic answers for us as well.
    """
    send_ms, expect_ms = stomp_negotiate_heartbeat(theirs, ours[0], ours[1])
    return send_ms / 1000.0, expect_ms / 1000.0


def accept_connected(frame: Frame, heartbeat: tuple[int, int]) -> Session:
    """Check the broker's answer to CONNECT; an ERROR or anything else raises ClientError."""
    if frame.command == "ERROR":
        raise ClientError(f"broker refused the connection: {error_text(frame.headers, frame.body)}")
    if frame.command != "CONNECTED":
        raise ClientError(f"expected CONNECTED, broker sent {frame.command[:40]!r}")
    version = frame.headers.get("version", "1.0")
    if version not in SUPPORTED_VERSIONS:
        raise ClientError(f"broker chose unsupported STOMP version {version[:20]!r}")
    theirs = parse_heartbeat(frame.headers.get("heart-beat"))
    send_every, expect_every = negotiate_heartbeat(heartbeat, theirs)
    headers = frame.headers
    return Session(version, send_every, expect_every, headers.get("server"), headers.get("session"))
