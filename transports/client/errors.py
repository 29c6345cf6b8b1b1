"""Client-side errors, under the one root `BrokerError`."""

from __future__ import annotations

from config.errors import BrokerError


class ClientError(BrokerError):
    """The broker refused something (an ERROR frame) or the client was used wrongly."""


class ConnectionLost(ClientError):
    """The link to the broker went away: EOF, a socket error, a heart-beat timeout or an ERROR.

    `broker_error` is the ERROR frame's message when an ERROR ended the link, else None.
    """

    def __init__(self, message: str, *, broker_error: str | None = None) -> None:
        super().__init__(message)
        self.broker_error = broker_error


class BrokerRefused(ClientError):
    """The broker answered one of our frames (named by its receipt) with ERROR; `message` is the
    ERROR's `message` header (or body)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ConnectFailed(ClientError):
    """No broker in the URL accepted a STOMP session within the allowed attempts."""


class ReconnectFailed(ConnectFailed):
    """A failover client gave up after `maxReconnectAttempts` failed passes over its brokers.

    `brokers` lists every broker tried (tcp://host:port), `last_error` the last failure seen.
    Everything still pending (un-receipted sends, subscriptions) ends with this error.
    """

    def __init__(self, message: str, brokers: tuple[str, ...] = (), last_error: str | None = None,
                 attempts: int = 0) -> None:
        super().__init__(message)
        self.brokers = brokers
        self.last_error = last_error
        self.attempts = attempts


class ClientTimeout(ClientError):
    """A call waited `timeout` ms (the failover URL's `timeout` option) for a connection in vain."""


class TransactionRolledBack(ClientError):
    """The connection failed over during the transaction: the broker aborted it (STOMP 1.2: a
    transaction ends with its connection), so nothing of it was committed. As ActiveMQ's
    TransactionRolledBackException, the caller should redo the whole transaction."""


class TransactionInDoubt(ClientError):
    """The connection failed while COMMIT awaited its receipt: the broker may or may not have
    committed. Check (e.g. with application ids) before redoing the transaction."""


# How much of an ERROR body is quoted: enough for a reason, not for a Java stack trace.
MAX_DETAIL = 200


def error_text(headers: dict[str, str], body: bytes) -> str:
    """The human part of an ERROR frame, on one line: its `message` header and, when the body says
    more (BatonMQ puts the detail there: which destination, which limit), the start of the body.
    The message comes first, so matching its prefix (replay.is_protocol_fault) still works."""
    message = " ".join(headers.get("message", "").split())
    detail = " ".join(body[: 4 * MAX_DETAIL].decode("utf-8", "replace").split())
    if len(detail) > MAX_DETAIL:
        detail = detail[: MAX_DETAIL - 3] + "..."
    if message and detail and detail != message:
        return f"{message}: {detail}"
    return message or detail or "broker sent ERROR"
