"""The configured authenticator: users with argon2id hashes and groups, and optional anonymous access.

As ActiveMQ's simple authentication plugin: a CONNECT with neither login nor passcode is
anonymous, let in as `anonymous_user` in `anonymous_group` when anonymous access is on; any other
is checked against the user table. Hash checks run on a small pool of their own (not the loop's
default executor, which the stores' reads use) and at most MAX_PENDING wait for it: past that a
flood of logins is refused unchecked rather than queued. An unknown user is checked against a
decoy hash, so that a wrong name takes as long as a wrong password.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor

from broker.engine.auth import Authenticator, Credentials, Principal
from broker.engine.certlogin import CertificateUsers
from config.errors import ConfigError
from config.passwords import decoy_hash, verify
from config.security import AuthenticationSettings, User
from config.users import load_users

log = logging.getLogger(__name__)

HASH_WORKERS = 2  # each check takes ~0.1 s of CPU and 64 MiB: the machine's cores, not more
MAX_PENDING = 64


class PasswordAuthenticator:
    def __init__(self, users: Iterable[User], anonymous: Principal | None = None,
                 certificates: Mapping[str, str] | None = None) -> None:
        self._users = {user.name: (user.password_hash, frozenset(user.groups)) for user in users}
        self.anonymous = anonymous
        self.certificates = CertificateUsers(certificates or {}, self._users)
        self._decoy = decoy_hash()
        self._pool = ThreadPoolExecutor(HASH_WORKERS, thread_name_prefix="password-check")
        self._pending = 0

    async def authenticate(self, credentials: Credentials) -> Principal | None:
        login, passcode = credentials.login, credentials.passcode
        if not login and not passcode:
            # A certificate the TLS layer verified against tls.ca proves who sent it: no hash to check.
            user = self.certificates.user_for(credentials.peer_certificate)
            if user is not None:
                return Principal(user, self._users[user][1])
            return self.anonymous  # None when anonymous access is off
        entry = self._users.get(login or "")
        if self._pending >= MAX_PENDING:
            log.warning("%d password checks already waiting; refusing %s unchecked",
                        self._pending, credentials.peer)
            return None
        self._pending += 1
        try:
            encoded = entry[0] if entry is not None else self._decoy
            loop = asyncio.get_running_loop()
            matched = await loop.run_in_executor(self._pool, verify, encoded, passcode or "")
        finally:
            self._pending -= 1
        if entry is None or not matched:
            return None
        return Principal(login or "", entry[1])

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def build_authenticator(settings: AuthenticationSettings) -> Authenticator | None:
    """The authenticator `settings` describe; None (the engine's AllowAll) when no user is
    configured. Reads the users files: ConfigError names a bad one."""
    if not settings.configured:
        return None
    users = load_users(settings)
    anonymous = None
    if settings.anonymous_allowed:
        anonymous = Principal(settings.anonymous_user, frozenset({settings.anonymous_group}), anonymous=True)
    log.info("authentication: %d users, anonymous access %s", len(users),
             f"as {settings.anonymous_user!r}" if anonymous else "off")
    try:
        return PasswordAuthenticator(users, anonymous, settings.certificate_users)
    except ValueError as exc:
        raise ConfigError("authentication.certificate_users", str(exc)) from None
