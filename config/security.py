"""Settings of who may connect (`[authentication]`) and what each user may do (`[authorization]`).

The semantics are ActiveMQ's simple authentication and authorization plugins (docs/security.md):
users with groups and argon2id password hashes, optional anonymous access, and per-destination
entries granting read / write / admin to groups, with `.`-separated names and the wildcards `*`
(one element) and `>` (the rest, at the end only). The ActiveMQ XML forms map onto these models
(config/xmlsecurity.py); users may also come from JAAS-style properties files (config/users.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from config.passwords import check_hash

# Bounds on what a configuration may hold: a file is read whole and each CONNECT and each
# SEND or SUBSCRIBE looks through these tables.
MAX_USERS = 10_000
MAX_ENTRIES = 1_000
MAX_GROUPS = 100
MAX_NAME = 200


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def split_names(value: object) -> object:
    """ActiveMQ writes group lists as "a,b"; TOML may write either that or an array."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


def _check_names(names: list[str], what: str) -> list[str]:
    if len(names) > MAX_GROUPS:
        raise ValueError(f"at most {MAX_GROUPS} {what}")
    for name in names:
        if not name or len(name) > MAX_NAME or any(c in name for c in ",\r\n\0"):
            raise ValueError(f"{what[:-1]} {name[:60]!r}: 1-{MAX_NAME} characters, no comma or line break")
    return names


class User(_Strict):
    name: str = Field(min_length=1, max_length=MAX_NAME)
    # An argon2id hash as `batonmq passwd` prints it; never the password itself.
    password_hash: str
    groups: list[str] = Field(default_factory=list)

    _split = field_validator("groups", mode="before")(split_names)

    @field_validator("groups")
    @classmethod
    def _groups(cls, groups: list[str]) -> list[str]:
        return _check_names(groups, "groups")

    @field_validator("password_hash")
    @classmethod
    def _hash(cls, value: str) -> str:
        check_hash(value)
        return value


class AuthenticationSettings(_Strict):
    users: list[User] = Field(default_factory=list, max_length=MAX_USERS)
    # JAAS PropertiesLoginModule files: `user=password` and `group=user1,user2`.
    users_file: Path | None = None
    groups_file: Path | None = None
    # Clients that send no login and no passcode. None: allowed only while no user is configured.
    anonymous_access: bool | None = None
    anonymous_user: str = Field("anonymous", min_length=1, max_length=MAX_NAME)
    anonymous_group: str = Field("anonymous", min_length=1, max_length=MAX_NAME)
    # Each failed login from an address doubles the wait before that address's next attempt is
    # checked, from failure_delay up to max_failure_delay seconds.
    # A user logs in by TLS client certificate (no login, no passcode): user name -> the exact
    # subject of its certificate, e.g. {"app1" = "CN=app1,O=Example"} (docs/security.md).
    certificate_users: dict[str, str] = Field(default_factory=dict, max_length=MAX_USERS)
    failure_delay: float = Field(0.1, ge=0, le=10)
    max_failure_delay: float = Field(10.0, ge=0, le=600)

    @property
    def configured(self) -> bool:
        """Is any user configured? Without one, every client is let in as before."""
        return bool(self.users) or self.users_file is not None

    @property
    def anonymous_allowed(self) -> bool:
        return (not self.configured) if self.anonymous_access is None else self.anonymous_access

    @model_validator(mode="after")
    def _consistent(self) -> AuthenticationSettings:
        if self.groups_file is not None and self.users_file is None:
            raise ValueError("groups_file needs users_file (the groups name users of that file)")
        if self.anonymous_access is False and not self.configured:
            raise ValueError("anonymous_access is false but no user is configured: nobody could connect")
        names = [user.name for user in self.users]
        if len(set(names)) != len(names):
            twice = sorted({name for name in names if names.count(name) > 1})[0]
            raise ValueError(f"user {twice!r} is configured twice")
        return self


Right = Literal["read", "write", "admin"]
RIGHTS: tuple[Right, ...] = ("read", "write", "admin")


def check_pattern(pattern: str) -> str:
    """A destination name or wildcard: `.`-separated elements, `>` only as the last element."""
    if not pattern or len(pattern) > 1024:
        raise ValueError("a destination pattern has 1-1024 characters")
    elements = pattern.split(".")
    if ">" in elements[:-1] or any(">" in e and e != ">" for e in elements):
        raise ValueError(f"{pattern!r}: '>' may only be a whole last element (as in FOO.>)")
    if any("*" in e and e != "*" for e in elements):
        raise ValueError(f"{pattern!r}: '*' must be a whole element (as in FOO.*.BAR)")
    return pattern


class AccessEntry(_Strict):
    """One authorizationEntry: the destinations it covers and the groups given each right.

    `queue` and `topic` may each list several patterns separated by commas (ActiveMQ's composite
    form). The group `*` means every user.
    """

    queue: str | None = None
    topic: str | None = None
    read: list[str] = Field(default_factory=list)
    write: list[str] = Field(default_factory=list)
    admin: list[str] = Field(default_factory=list)

    _split = field_validator("read", "write", "admin", mode="before")(split_names)

    @field_validator("read", "write", "admin")
    @classmethod
    def _groups(cls, groups: list[str]) -> list[str]:
        return _check_names(groups, "groups")

    @field_validator("queue", "topic")
    @classmethod
    def _patterns(cls, value: str | None) -> str | None:
        if value is not None:
            for pattern in value.split(","):
                check_pattern(pattern.strip())
        return value

    @model_validator(mode="after")
    def _one_kind(self) -> AccessEntry:
        if (self.queue is None) == (self.topic is None):
            raise ValueError("an entry names exactly one of queue or topic")
        return self


class DefaultEntry(_Strict):
    """ActiveMQ's defaultEntry: rights on every destination, added to those of matching entries."""

    read: list[str] = Field(default_factory=list)
    write: list[str] = Field(default_factory=list)
    admin: list[str] = Field(default_factory=list)

    _split = field_validator("read", "write", "admin", mode="before")(split_names)


class AuthorizationSettings(_Strict):
    # No entry and no default: authorization is off and every client may do everything.
    entries: list[AccessEntry] = Field(default_factory=list, max_length=MAX_ENTRIES)
    default: DefaultEntry | None = None
    # A refused SEND or SUBSCRIBE: "error" answers ERROR and the connection goes on (as ActiveMQ);
    # "close" answers ERROR and closes it.
    on_denied: Literal["error", "close"] = "error"

    @property
    def enabled(self) -> bool:
        return bool(self.entries) or self.default is not None
