"""Errors the STOMP engine raises, split by fault (style.md point 5).

A `ClientError` is the peer's fault: the session answers with an ERROR frame (STOMP 1.2, "ERROR":
a `message` header, a body with details, `receipt-id` when the offending frame asked for a receipt)
and then closes the connection, as the spec requires after an ERROR.
"""

from __future__ import annotations

from transports.stomp.frame import ProtocolError


class ClientError(ProtocolError):
    """The client broke a STOMP or broker rule; `detail` becomes the ERROR frame's body."""

    def __init__(self, message: str, detail: str = "", headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail or message
        self.headers = headers or {}


class StoreFull(ClientError):
    """A persistent SEND waited `store.usage_timeout` at the store's disk limit (stores/usage.py)."""

    def __init__(self, reason: str, waited: float) -> None:
        super().__init__(
            "store full",
            f"message not stored: {reason}; the SEND waited {waited:g} s (store.usage_timeout) for "
            "consumers to free space; retry later",
        )


class Rejected(ClientError):
    """A frame that is refused and not carried out while the connection goes on (STOMP 1.2 lets a
    server keep a connection open after an ERROR): e.g. a SUBSCRIBE with an id already in use."""


class Refused(ClientError):
    """Not allowed for this user (a missing right, another user's name): the frame is not carried
    out. Unlike other client errors it need not end the connection (`authorization.on_denied`)."""


class Forbidden(Refused):
    """The user lacks `right` (read, write or admin) on `destination` (docs/security.md)."""

    def __init__(self, right: str, destination: str, user: str) -> None:
        super().__init__(
            f"{right} access denied on {destination}",
            f"user {user[:100]!r} has no {right} right on {destination}",
            {"destination": destination},
        )
        self.right = right
        self.destination = destination
