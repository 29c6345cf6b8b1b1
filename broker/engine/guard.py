"""What one user may touch: destination rights (access.py) and the names clients choose.

Ownership (docs/security.md): a durable subscription belongs to the user who created it, and a
client-id to the user whose durable subscriptions it holds. Another user can neither connect with
that client-id, nor attach, replace or remove the subscription. Owners exist only with
authentication on: without it every client is the same nobody and nothing is owned (as before).
A subscription with no owner (made without authentication, or by an older version) is claimed by
the first user who attaches it once authentication is on.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from broker.engine.access import AccessMap
from broker.engine.auth import AllowAll, Authenticator, Principal
from broker.engine.errors import Refused
from config.security import AuthorizationSettings, Right

if TYPE_CHECKING:
    from broker.engine.destinations import Destinations, Durable


def owner_of(authenticator: Authenticator, principal: Principal) -> str | None:
    """The name a session's durable subscriptions are kept under; None without authentication."""
    return None if isinstance(authenticator, AllowAll) else principal.name


class Guard:
    def __init__(self, settings: AuthorizationSettings, destinations: Destinations) -> None:
        self.access = AccessMap(settings) if settings.enabled else None
        self.close_on_denied = settings.on_denied == "close"
        self.destinations = destinations

    def authorize(self, principal: Principal, right: Right, destination: str) -> None:
        """Raise Forbidden unless `principal` has `right` (and admin, to create) on `destination`."""
        if self.access is None:
            return
        self.access.check(principal, right, destination)
        if not self.destinations.exists(destination):
            self.access.check(principal, "admin", destination)

    def check_client_id(self, client_id: str, owner: str | None) -> None:
        if owner is None:
            return
        if self.destinations.owners_of(client_id) - {owner}:
            raise Refused("client-id not available",
                          f"client-id {client_id[:100]!r} holds durable subscriptions of another user")

    def check_durable(self, durable: Durable, client_id: str, name: str, owner: str | None) -> None:
        """May this session (client-id, owner) use the durable subscription stored under its key?"""
        if (durable.client_id, durable.name) != (client_id, name):
            # durable_key() joins the two with ':', so ("a:b", "c") and ("a", "b:c") share a key.
            raise Refused("durable subscription name clash",
                          f"{name[:100]!r} of client-id {client_id[:100]!r} clashes with another one")
        if owner is not None and durable.owner not in (None, owner):
            raise Refused("durable subscription of another user",
                          f"{name[:100]!r} of client-id {client_id[:100]!r} belongs to another user")
