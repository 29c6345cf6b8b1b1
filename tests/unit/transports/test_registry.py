"""The connector scheme table: which server class serves a URI, and the error for a scheme none serves."""

from __future__ import annotations

import pytest

from config.errors import ConfigError
from config.loader import build_config
from config.model import BrokerConfig, Limits, parse_connector
from transports.registry import SCHEMES, UnknownScheme, create_server, server_class
from transports.server import StompServer
from transports.tcp import TcpServer
from transports.websocket import WsServer


def no_handler(link: object) -> None:
    raise AssertionError("no connection is made in these tests")


@pytest.mark.parametrize("scheme", ["tcp", "stomp"])
def test_tcp_and_stomp_resolve_to_the_tcp_server(scheme: str) -> None:
    assert server_class(scheme) is TcpServer
    assert issubclass(server_class(scheme), StompServer)


async def test_create_server_splits_the_uri_and_keeps_the_scheme() -> None:
    server = create_server("stomp://127.0.0.7:61613", no_handler, Limits())  # type: ignore[arg-type]
    assert isinstance(server, TcpServer)
    assert (server.scheme, server.host, server.port) == ("stomp", "127.0.0.7", 61613)
    assert server.connection_count == 0  # built, not started: nothing bound


@pytest.mark.parametrize("scheme", ["mqtt", "udp", "amqp"])
def test_unknown_scheme_names_the_known_ones(scheme: str) -> None:
    with pytest.raises(UnknownScheme) as info:
        server_class(scheme)
    known = "ssl://, stomp://, stomp+ssl://, tcp://, ws://, wss://"
    assert str(info.value) == f"unknown connector scheme {scheme!r}; known schemes: {known}"
    with pytest.raises(UnknownScheme):
        create_server(f"{scheme}://127.0.0.1:1", no_handler, Limits())  # type: ignore[arg-type]


def test_ws_resolves_to_the_websocket_server() -> None:
    assert server_class("ws") is WsServer


def test_every_entry_names_an_importable_server() -> None:
    for scheme in SCHEMES:
        assert issubclass(server_class(scheme), StompServer), scheme


def test_config_alone_checks_only_the_syntax() -> None:
    # config imports no transport, so it cannot know which schemes exist: any one passes there...
    assert BrokerConfig(connectors=["mqtt://h:1"]).connectors == ["mqtt://h:1"]
    assert parse_connector("ssl://[::1]:61617") == ("ssl", "::1", 61617)
    # ...but the syntax is always checked.
    for bad, problem in [
        ("localhost:61616", "needs a scheme"),
        ("tcp://nohostport", "needs a port"),
        ("tcp://h:99999", "invalid port '99999'"),
    ]:
        with pytest.raises(ValueError, match=problem):
            parse_connector(bad)


def test_build_config_with_the_table_refuses_an_unknown_scheme() -> None:
    overrides = {"connectors": ["tcp://127.0.0.2:1", "mqtt://127.0.0.2:2"]}
    with pytest.raises(ConfigError) as info:
        build_config(None, {}, overrides, SCHEMES)
    assert info.value.key == "connectors"
    assert info.value.problem == (
        "connector 'mqtt://127.0.0.2:2': scheme must be one of ssl://, stomp://, stomp+ssl://"
        ", tcp://, ws://, wss:// (got 'mqtt') [from command line]"
    )
    ok = build_config(None, {}, {"connectors": ["stomp://127.0.0.2:1", "ws://127.0.0.2:2"]}, SCHEMES)
    assert ok.connectors == ["stomp://127.0.0.2:1", "ws://127.0.0.2:2"]
