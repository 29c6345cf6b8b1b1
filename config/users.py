"""The user table: `[authentication].users` plus JAAS-style `users.properties` / `groups.properties`.

ActiveMQ's PropertiesLoginModule reads `user=password` lines and `group=user1,user2` lines. Its
passwords are plain text; BatonMQ accepts that for migration, hashes each one at load and says so
in a WARNING (put the `batonmq passwd` hash in the file instead). Jasypt's `ENC(...)` values are
refused: their key would have to sit beside them. Files are read once, when the broker starts.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from config.errors import ConfigError
from config.passwords import PREFIX, hash_password
from config.security import MAX_USERS, AuthenticationSettings, User

log = logging.getLogger("batonmq.config")

MAX_FILE_BYTES = 1024 * 1024
_ESCAPES = {"t": "\t", "n": "\n", "r": "\r", "f": "\f"}


def load_users(settings: AuthenticationSettings) -> list[User]:
    """Every configured user, each once; ConfigError names the file and line of a problem."""
    users = list(settings.users)
    if settings.users_file is not None:
        groups = _groups(settings.groups_file) if settings.groups_file is not None else {}
        known = {user.name for user in users}
        for name, password, where in _properties(settings.users_file):
            if name in known:
                raise ConfigError(where, f"user {name!r} is configured twice")
            known.add(name)
            users.append(_user(name, password, sorted(groups.get(name, ())), where))
        if len(users) > MAX_USERS:
            raise ConfigError(str(settings.users_file), f"more than {MAX_USERS} users")
    return users


def _user(name: str, password: str, groups: list[str], where: str) -> User:
    if password.startswith("ENC(") and password.endswith(")"):
        raise ConfigError(where, "encrypted (ENC) passwords are not supported; use a `batonmq passwd` hash")
    if not password.startswith(PREFIX):
        log.warning("%s: user %r has a plain-text password; it is hashed in memory now, but replace it "
                    "in the file with the hash `batonmq passwd` prints", where, name)
        password = hash_password(password)
    try:
        return User(name=name, password_hash=password, groups=groups)
    except ValueError as exc:  # pydantic's ValidationError is a ValueError
        raise ConfigError(where, _first_problem(exc)) from None


def _groups(path: Path) -> dict[str, set[str]]:
    members: dict[str, set[str]] = {}
    for group, users, _ in _properties(path):
        for user in (u.strip() for u in users.split(",")):
            if user:
                members.setdefault(user, set()).add(group)
    return members


def _properties(path: Path) -> list[tuple[str, str, str]]:
    """(key, value, "file:line") of a Java properties file: `#`/`!` comments, `=`, `:` or blank as
    the separator, a trailing backslash continuing a line, and the usual escapes."""
    out: list[tuple[str, str, str]] = []
    logical, start = "", 0
    for number, line in enumerate(_read(path).splitlines(), start=1):
        stripped = line.lstrip()
        if not logical and (not stripped or stripped[0] in "#!"):
            continue
        if not logical:
            start = number
        trailing = len(stripped) - len(stripped.rstrip("\\"))
        if trailing % 2:  # an odd number of backslashes: the line goes on
            logical += stripped[:-1]
            continue
        logical += stripped
        out.append(_pair(logical, f"{path}:{start}"))
        logical = ""
    if logical:
        out.append(_pair(logical, f"{path}:{start}"))
    return out


def _pair(text: str, where: str) -> tuple[str, str, str]:
    end = 0  # the key ends at the first unescaped '=', ':' or blank
    while end < len(text) and text[end] not in "=: \t\f":
        end += 2 if text[end] == "\\" else 1
    end = min(end, len(text))
    rest = text[end:].lstrip(" \t\f")
    if rest[:1] in ("=", ":"):
        rest = rest[1:].lstrip(" \t\f")
    key = _unescape(text[:end], where)
    if not key:
        raise ConfigError(where, "a line with no key")
    return key, _unescape(rest, where), where


def _unescape(text: str, where: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char != "\\" or i + 1 == len(text):
            out.append(char)
            i += 1
            continue
        escaped = text[i + 1]
        if escaped == "u":
            digits = text[i + 2 : i + 6]
            if not re.fullmatch(r"[0-9a-fA-F]{4}", digits):
                raise ConfigError(where, r"malformed \uXXXX escape")
            out.append(chr(int(digits, 16)))
            i += 6
            continue
        out.append(_ESCAPES.get(escaped, escaped))
        i += 2
    return "".join(out)


def _read(path: Path) -> str:
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError(str(path), "no such file") from None
    except OSError as exc:
        raise ConfigError(str(path), f"cannot read: {exc.strerror or exc}") from None
    if len(data) > MAX_FILE_BYTES:
        raise ConfigError(str(path), f"larger than {MAX_FILE_BYTES // 1024} KiB")
    try:
        # Java 9+ reads properties files as UTF-8 (ISO-8859-1 before): accept either.
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def _first_problem(exc: ValueError) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        first = errors()[0]
        field = ".".join(str(part) for part in first["loc"])
        return f"{field}: {str(first['msg']).removeprefix('Value error, ')}"
    return str(exc)
