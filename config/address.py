"""`SCHEME://HOST:PORT`, parsed one way for connectors (config) and client URLs (transports.url).

Strict on purpose: a host is a name of letters, digits, `_`, `.` and `-`, or an IPv6 address in
brackets; the port is 1-65535; no path, user or query. `noun` names the thing in the error
("connector", "broker URI") so that each caller's message reads right.
"""

from __future__ import annotations

import ipaddress
import re
from typing import NamedTuple

_HOSTNAME = re.compile(r"[A-Za-z0-9_.-]+")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*")


class Address(NamedTuple):
    scheme: str
    host: str
    port: int


def split_address(uri: str, noun: str = "connector", listen: bool = False) -> Address:
    """Raise ValueError naming the offending part. `listen`: port 0 (any free port) is allowed."""
    scheme, sep, rest = uri.partition("://")
    if not sep or not _SCHEME.fullmatch(scheme):
        raise ValueError(f"{noun} {uri!r} needs a scheme, e.g. tcp://{uri}")
    if "?" in rest or "@" in rest:
        raise ValueError(f"{noun} {uri!r} takes no options or user; expected {scheme}://HOST:PORT")
    authority = rest.removesuffix("/")
    if "/" in authority:
        raise ValueError(f"{noun} {uri!r} has a path; expected {scheme}://HOST:PORT")
    host, port_part = _split_host(uri, authority, noun)
    if not port_part.startswith(":") or len(port_part) == 1:
        raise ValueError(f"{noun} {uri!r} needs a port")
    port_text = port_part[1:]
    valid = port_text.isascii() and port_text.isdigit() and len(port_text) <= 5
    lowest = 0 if listen else 1
    if not (valid and lowest <= int(port_text) < 65536):
        raise ValueError(f"{noun} {uri!r}: invalid port {port_text!r} (expected {lowest}-65535)")
    return Address(scheme.lower(), host, int(port_text))


def _split_host(uri: str, authority: str, noun: str) -> tuple[str, str]:
    if authority.startswith("["):
        close = authority.find("]")
        if close < 0:
            raise ValueError(f"{noun} {uri!r}: '[' without a matching ']'")
        host = authority[1:close]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"{noun} {uri!r}: {host!r} is not an IPv6 address") from None
        return host, authority[close + 1:]
    host, colon, port_text = authority.rpartition(":")
    if not colon:
        host, port_text = authority, ""
    if not host or not _HOSTNAME.fullmatch(host):
        hint = " (write an IPv6 address in brackets, e.g. [::1]:61616)" if ":" in host else ""
        raise ValueError(f"{noun} {uri!r}: invalid host {host!r}{hint}")
    return host, colon + port_text
