"""Client-side errors, under the one root `BrokerError`."""

from __future__ import annotations

from config.errors import BrokerError


class ClientError(BrokerError):
    """The broker refused something (an ERROR frame) or the client was used wrongly."""


class ConnectionLost(ClientError):
    """The link to the broker went away: EOF, a socket error, a heart-beat timeout or an ERROR."""


class ConnectFailed(ClientError):
    """No broker in the URL accepted a STOMP session within the allowed attempts."""


def error_text(headers: dict[str, str], body: bytes) -> str:
    """The human part of an ERROR frame: its `message` header, else the start of its body."""
    message = headers.get("message")
    if message:
        return message
    text = body[:500].decode("utf-8", "replace").strip()
    return text or "broker sent ERROR"
