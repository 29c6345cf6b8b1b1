"""Connector URI schemes → server classes, imported lazily (as stores/registry.py does for stores).

A scheme is added here together with its module. The configuration checks only the
`scheme://HOST:PORT?options` syntax (config must not import transports); the command line hands
`SCHEMES` to `config.loader.build_config` so that an unknown scheme is one configuration error
naming the known ones.

A connector URI's options (config/connector.py) make its own limits: `maximumConnections` and
`wireFormat.maxFrameSize` replace the broker-wide `limits` for that listener only, and the TLS
ones its client-certificate policy. TLS schemes (`config.connector.TLS_SCHEMES`) get the
SSLContext built from `[tls]`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from config.connector import Connector, parse_connector_uri
from config.errors import ConfigError
from config.model import Limits, TlsSettings
from transports.memory import MemoryBudget
from transports.server import HandlerFactory, StompServer

if TYPE_CHECKING:  # imported lazily at run time, like every server class
    from transports.tls import TlsServer
    from transports.websocket import WsServer

SCHEMES: dict[str, str] = {
    "tcp": "transports.tcp:TcpServer",
    # ActiveMQ's name for a STOMP-only TCP connector; ours speak only STOMP anyway.
    "stomp": "transports.tcp:TcpServer",
    "ssl": "transports.tls:TlsServer",
    "stomp+ssl": "transports.tls:TlsServer",
    "ws": "transports.websocket:WsServer",
    "wss": "transports.websocket:WsServer",
}


class UnknownScheme(ValueError):
    """A connector scheme no transport serves; the message names the ones that exist."""

    def __init__(self, scheme: str) -> None:
        known = ", ".join(f"{name}://" for name in sorted(SCHEMES))
        super().__init__(f"unknown connector scheme {scheme!r}; known schemes: {known}")
        self.scheme = scheme


def server_class(scheme: str) -> type[StompServer]:
    try:
        target = SCHEMES[scheme]
    except KeyError:
        raise UnknownScheme(scheme) from None
    module_name, _, class_name = target.partition(":")
    cls: type[StompServer] = getattr(importlib.import_module(module_name), class_name)
    return cls


def connector_limits(connector: Connector, limits: Limits) -> Limits:
    """The broker-wide limits with this connector's own options in place."""
    if not connector.limits:
        return limits
    return Limits.model_validate({**limits.model_dump(), **connector.limits})


def create_server(uri: str, handler_factory: HandlerFactory, limits: Limits,
                  tls: TlsSettings | None = None, memory: MemoryBudget | None = None) -> StompServer:
    """The (not yet started) server for one configured connector URI; `tls` serves ssl:// ones.
    `memory` is the broker's budget, which the server's connections count in."""
    server = _create_server(uri, handler_factory, limits, tls)
    if memory is not None:
        server.memory = memory
    return server


def _create_server(uri: str, handler_factory: HandlerFactory, limits: Limits,
                   tls: TlsSettings | None) -> StompServer:
    connector = parse_connector_uri(uri)
    cls = server_class(connector.scheme)
    address, own_limits = connector.address, connector_limits(connector, limits)
    if not connector.tls:
        return cls(address.host, address.port, handler_factory, own_limits, address.scheme)
    from transports.tls import server_context

    if tls is None:
        raise ConfigError("tls", f"connector {uri} needs TLS settings")
    context = server_context(tls, connector.client_auth)
    secure: type[TlsServer | WsServer] = cls  # type: ignore[assignment]  # what TLS_SCHEMES map to
    server: StompServer = secure(address.host, address.port, handler_factory, own_limits, address.scheme,
                                 context=context)
    return server
