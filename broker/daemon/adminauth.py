"""Who may use the admin API: HTTP basic auth against the STOMP users, and the `admin` right.

- Without users configured (no authenticator) the API is as open as the STOMP port: every
  request acts as `anonymous` with every right. Its listener binds loopback by default for that.
- With users, each request logs in with `Authorization: Basic` (RFC 7617), checked by the same
  authenticator as a STOMP CONNECT (argon2id, off the event loop) behind the same failure delay
  per address. No or wrong credentials: 401 with a `WWW-Authenticate` challenge (a browser then
  asks for them). A request without credentials is anonymous if anonymous access is on.
- With `[authorization]` entries, an operation on a destination needs the `admin` right on it
  (a move: on the source and on each target); listing shows only destinations the user holds
  `admin` on. Without entries every logged-in user may do everything, as on the STOMP port.

Requests that change something must also carry `Content-Type: application/json` and, when a
browser sends an `Origin`, come from the API's own origin: a page of another site can make a
browser send a form with the user's saved credentials, but neither of these (cross-site forms
cannot set that type, and a script's request would need a CORS preflight this API never grants).
"""

from __future__ import annotations

import base64
import binascii
from urllib.parse import urlsplit

from broker.engine.access import AccessMap
from broker.engine.auth import ANONYMOUS, Authenticator, Credentials, Principal
from broker.engine.login import LoginThrottle, log_in
from config.model import BrokerConfig
from transports.http import Request

MAX_CREDENTIALS = 1024  # bytes of a decoded `user:password`


class Denied(Exception):
    """The request may not go on: `status` 401 (log in) or 403 (not allowed)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class Gatekeeper:
    def __init__(self, config: BrokerConfig, authenticator: Authenticator | None) -> None:
        self.authenticator = authenticator
        authn = config.authentication
        self.logins = LoginThrottle(authn.failure_delay, authn.max_failure_delay)
        self.access = AccessMap(config.authorization) if config.authorization.enabled else None

    async def principal(self, request: Request) -> Principal:
        """Who sent the request; Denied(401) when the authenticator refuses it."""
        if self.authenticator is None:
            return ANONYMOUS
        login, passcode = basic_credentials(request.headers.get("authorization"))
        credentials = Credentials(login, passcode, request.peer, "http")
        principal = await log_in(self.logins, self.authenticator, credentials, "admin API")
        if principal is None:
            raise Denied(401, "authentication required" if login is None else "authentication failed")
        return principal

    def allows(self, principal: Principal, destination: str) -> bool:
        return self.access is None or self.access.allows(principal, "admin", destination)

    def check(self, principal: Principal, destination: str) -> None:
        if not self.allows(principal, destination):
            raise Denied(403, f"admin access denied on {destination[:200]}")


def basic_credentials(header: str | None) -> tuple[str | None, str | None]:
    """(login, password) of an `Authorization: Basic` header; (None, None) without one."""
    if header is None:
        return None, None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "basic" or len(token) > MAX_CREDENTIALS * 2:
        raise Denied(401, "only HTTP basic authentication is supported")
    try:
        text = base64.b64decode(token.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise Denied(401, "malformed basic credentials") from None
    login, sep, password = text.partition(":")
    if not sep or len(text) > MAX_CREDENTIALS:
        raise Denied(401, "malformed basic credentials")
    return login, password


def check_change_request(request: Request) -> None:
    """What a request that changes something must carry (module docstring: cross-site requests)."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/json":
        raise Denied(415, "changes take Content-Type: application/json")
    origin = request.headers.get("origin")
    if origin is not None and urlsplit(origin).netloc != request.headers.get("host"):
        raise Denied(403, "cross-origin request refused")
