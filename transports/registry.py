"""Connector URI schemes → server classes, imported lazily (as stores/registry.py does for stores).

A scheme is added here together with its module: `ssl` comes with the TLS settings, and `wss` with
them (transports.websocket.WsServer takes their SSLContext as `ssl_context`). The
configuration checks only the `scheme://HOST:PORT` syntax (config must not import transports); the
command line hands `SCHEMES` to `config.loader.build_config` so that an unknown scheme is one
configuration error naming the known ones.
"""

from __future__ import annotations

import importlib

from config.model import Limits, parse_connector
from transports.server import HandlerFactory, StompServer

SCHEMES: dict[str, str] = {
    "tcp": "transports.tcp:TcpServer",
    # ActiveMQ's name for a STOMP-only TCP connector; ours speak only STOMP anyway.
    "stomp": "transports.tcp:TcpServer",
    "ws": "transports.websocket:WsServer",
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


def create_server(uri: str, handler_factory: HandlerFactory, limits: Limits) -> StompServer:
    """The (not yet started) server for one configured connector URI."""
    address = parse_connector(uri)
    return server_class(address.scheme)(address.host, address.port, handler_factory, limits, address.scheme)
