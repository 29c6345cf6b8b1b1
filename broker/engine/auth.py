"""Who may connect: the authenticator a Session asks on CONNECT, and the principal it keeps.

The Session builds `Credentials` from the CONNECT frame and its connection, awaits
`Authenticator.authenticate`, and keeps the returned `Principal` for later authorization. A refusal
(None, an exception, or no answer within AUTH_TIMEOUT) becomes one ERROR frame that says only that
authentication failed, then close; never CONNECTED. The check may be slow (a password hash is best
run off the event loop with `asyncio.to_thread`): frames of that connection wait, others do not.

The default, `AllowAll`, accepts everyone as `ANONYMOUS`, as BatonMQ always has. ActiveMQ's simple
authentication plugin names its unauthenticated user and group "anonymous" too.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

log = logging.getLogger(__name__)

# A hung authenticator (an LDAP server gone away) must refuse, not hold the connection forever.
AUTH_TIMEOUT = 10.0


@dataclass(frozen=True, slots=True)
class Principal:
    name: str
    groups: frozenset[str] = field(default_factory=frozenset)
    # Let in without credentials: the name is shared by every such client and proves nothing,
    # so what is scoped by user (duplicate detection) is scoped by address as well for these.
    anonymous: bool = False


ANONYMOUS = Principal("anonymous", frozenset({"anonymous"}), anonymous=True)


@dataclass(frozen=True, slots=True)
class Credentials:
    """What a client offered, and how it came in."""

    login: str | None
    passcode: str | None = field(repr=False)  # never in a log line
    peer: str  # the client's address, "host:port"
    scheme: str  # the connector it came through: tcp, stomp (later ssl, ws)
    # The TLS client certificate as ssl.SSLObject.getpeercert() returns it; None without TLS.
    peer_certificate: Mapping[str, object] | None = None


class Authenticator(Protocol):
    async def authenticate(self, credentials: Credentials) -> Principal | None:
        """The principal the client acts as, or None to refuse it."""


class AllowAll:
    """Accept every client as ANONYMOUS, whatever it offers."""

    async def authenticate(self, credentials: Credentials) -> Principal | None:
        return ANONYMOUS


async def authenticate(authenticator: Authenticator, credentials: Credentials, who: str) -> Principal | None:
    """Ask `authenticator`; a refusal, a failure or no answer within AUTH_TIMEOUT is None (logged)."""
    peer = credentials.peer
    try:
        async with asyncio.timeout(AUTH_TIMEOUT):
            principal = await authenticator.authenticate(credentials)
    except TimeoutError:
        log.warning("%s (%s): no answer from the authenticator within %gs", who, peer, AUTH_TIMEOUT)
        return None
    except Exception:  # a broken authenticator refuses: fail closed
        log.exception("%s (%s): the authenticator failed", who, peer)
        return None
    if principal is None:
        log.warning("%s (%s): login %r refused", who, peer, (credentials.login or "")[:100])
    return principal


def host_of(peer: str) -> str:
    """The address part of "host:port" (IPv6 too); the whole string for a peer without a port."""
    host, sep, port = peer.rpartition(":")
    return host.strip("[]") if sep and port.isdigit() else peer
