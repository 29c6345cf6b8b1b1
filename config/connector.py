"""Connector URIs: `SCHEME://HOST:PORT?option=value&...`, with ActiveMQ's option names.

The host and port are parsed as every address is (config.address); the query holds the
connector's own settings, spelt as an ActiveMQ operator writes them on a `<transportConnector>`:

    maximumConnections=N         this connector's connection cap (limits.max_connections)
    wireFormat.maxFrameSize=N    the largest frame it accepts, bytes (limits.max_frame_size)
    transport.needClientAuth=B   TLS connectors: a client certificate is required (tls.client_auth)
    transport.wantClientAuth=B   TLS connectors: a client certificate is asked for, not required

`needClientAuth` and `wantClientAuth` without the `transport.` prefix are accepted too (older
ActiveMQ docs spell them so). An option the connector does not set falls back to the broker-wide
setting. Which schemes exist is the transports' business (config imports none of ours); which of
them are TLS is written here because the TLS settings are validated here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from config.address import Address, split_address

ClientAuth = Literal["none", "optional", "required"]

TLS_SCHEMES = frozenset({"ssl", "stomp+ssl", "wss"})

_INTEGER = re.compile(r"[0-9]{1,12}")
# URI option -> (Limits field, lowest value); the Limits model checks the same bounds again.
LIMIT_OPTIONS: dict[str, tuple[str, int]] = {
    "maximumConnections": ("max_connections", 1),
    "wireFormat.maxFrameSize": ("max_frame_size", 1024),
}
# URI option -> the client-auth level it asks for when true.
CLIENT_AUTH_OPTIONS: dict[str, ClientAuth] = {
    "transport.needClientAuth": "required",
    "needClientAuth": "required",
    "transport.wantClientAuth": "optional",
    "wantClientAuth": "optional",
}
OPTION_NAMES = tuple(LIMIT_OPTIONS) + tuple(CLIENT_AUTH_OPTIONS)


@dataclass(frozen=True)
class Connector:
    address: Address
    # Limits field -> value, for the options this URI sets.
    limits: dict[str, int] = field(default_factory=dict)
    # None: the URI says nothing, tls.client_auth applies.
    client_auth: ClientAuth | None = None

    @property
    def scheme(self) -> str:
        return self.address.scheme

    @property
    def tls(self) -> bool:
        return self.address.scheme in TLS_SCHEMES


def parse_connector_uri(uri: str) -> Connector:
    """Split a connector URI and its options; raise ValueError naming the offending part."""
    base, _, query = uri.partition("?")
    address = split_address(base, "connector", listen=True)
    limits: dict[str, int] = {}
    wanted: dict[ClientAuth, bool] = {}
    seen: set[str] = set()
    for pair in query.split("&") if query else ():
        name, eq, text = pair.partition("=")
        if name in seen:
            raise ValueError(f"connector {uri!r}: option {name!r} is given twice")
        seen.add(name)
        if not eq or not text:
            raise ValueError(f"connector {uri!r}: option {name or pair!r} needs a value: {name}=...")
        if name in LIMIT_OPTIONS:
            setting, lowest = LIMIT_OPTIONS[name]
            limits[setting] = _integer(uri, name, text, lowest)
        elif name in CLIENT_AUTH_OPTIONS:
            if address.scheme not in TLS_SCHEMES:
                raise ValueError(f"connector {uri!r}: {name} applies only to ssl:// connectors")
            level = CLIENT_AUTH_OPTIONS[name]
            if level in wanted:
                raise ValueError(f"connector {uri!r}: {name} repeats another spelling of the same option")
            wanted[level] = _boolean(uri, name, text)
        else:
            known = ", ".join(OPTION_NAMES)
            raise ValueError(f"connector {uri!r}: unknown option {name!r} (known: {known})")
    return Connector(address, limits, _client_auth(wanted))


def _client_auth(wanted: dict[ClientAuth, bool]) -> ClientAuth | None:
    # As ActiveMQ's SSLServerSocket: need wins over want; both given as false means none.
    if not wanted:
        return None
    if wanted.get("required"):
        return "required"
    return "optional" if wanted.get("optional") else "none"


def _integer(uri: str, name: str, text: str, lowest: int) -> int:
    if not _INTEGER.fullmatch(text) or int(text) < lowest:
        raise ValueError(f"connector {uri!r}: {name} must be a whole number >= {lowest} (got {text!r})")
    return int(text)


def _boolean(uri: str, name: str, text: str) -> bool:
    # Java's Boolean.valueOf reads any typo as false; for a security option that must be an error.
    lowered = text.lower()
    if lowered not in ("true", "false"):
        raise ValueError(f"connector {uri!r}: {name} must be true or false (got {text!r})")
    return lowered == "true"
