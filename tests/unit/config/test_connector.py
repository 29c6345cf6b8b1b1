"""Connector URIs with ActiveMQ's options, and the TLS settings a TLS connector needs."""

from __future__ import annotations

from pathlib import Path

import pytest

from config.connector import parse_connector_uri
from config.errors import ConfigError
from config.loader import build_config
from config.model import BrokerConfig, Limits
from transports.registry import connector_limits


def test_options_become_the_connectors_own_settings() -> None:
    plain = parse_connector_uri("tcp://127.0.0.1:61616")
    assert (plain.scheme, plain.address, plain.tls) == ("tcp", ("tcp", "127.0.0.1", 61616), False)
    assert (plain.limits, plain.client_auth) == ({}, None)
    secure = parse_connector_uri("ssl://[::1]:61617?maximumConnections=5&wireFormat.maxFrameSize=2048"
                                 "&transport.needClientAuth=true")
    assert secure.tls and secure.address.host == "::1"
    assert secure.limits == {"max_connections": 5, "max_frame_size": 2048}
    assert secure.client_auth == "required"


@pytest.mark.parametrize(
    ("query", "level"),
    [
        ("transport.wantClientAuth=true", "optional"),
        ("wantClientAuth=TRUE", "optional"),
        ("needClientAuth=true&wantClientAuth=true", "required"),  # need wins, as in Java's SSLServerSocket
        ("transport.needClientAuth=false", "none"),  # said, and false: no client certificate
        ("maximumConnections=3", None),  # not said: tls.client_auth applies
    ],
)
def test_client_auth_options(query: str, level: str | None) -> None:
    assert parse_connector_uri(f"stomp+ssl://h:1?{query}").client_auth == level


@pytest.mark.parametrize(
    ("uri", "problem"),
    [
        ("tcp://h:1?maximumConnections=0", "maximumConnections must be a whole number >= 1 (got '0')"),
        ("tcp://h:1?wireFormat.maxFrameSize=10", "wireFormat.maxFrameSize must be a whole number >= 1024"),
        ("tcp://h:1?maximumConnections=-3", "must be a whole number"),
        ("tcp://h:1?maximumConnections", "option 'maximumConnections' needs a value"),
        ("tcp://h:1?maximumConnections=1&maximumConnections=2", "option 'maximumConnections' is given twice"),
        ("tcp://h:1?transport.needClientAuth=true", "applies only to ssl:// connectors"),
        ("ssl://h:1?needClientAuth=yes", "needClientAuth must be true or false (got 'yes')"),
        ("ssl://h:1?needClientAuth=true&transport.needClientAuth=true", "repeats another spelling"),
        ("tcp://h:1?trace=true", "unknown option 'trace' (known: maximumConnections,"),
        ("tcp://h?maximumConnections=1", "needs a port"),
    ],
)
def test_bad_options_are_named(uri: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem.replace(".", r"\.").replace("(", r"\(").replace(")", r"\)")):
        parse_connector_uri(uri)


def test_the_connectors_limits_replace_only_what_its_uri_sets() -> None:
    base = Limits(max_connections=100, max_frame_size=4096, heartbeat_grace=3.0)
    own = connector_limits(parse_connector_uri("tcp://h:1?maximumConnections=2"), base)
    assert (own.max_connections, own.max_frame_size, own.heartbeat_grace) == (2, 4096, 3.0)
    assert connector_limits(parse_connector_uri("tcp://h:2"), base) is base


def test_a_bad_option_is_a_config_error_naming_connectors() -> None:
    with pytest.raises(ConfigError) as info:
        build_config(None, {}, {"connectors": ["tcp://h:1", "ssl://h:2?maximumConnections=x"]})
    assert info.value.key == "connectors"
    assert "maximumConnections must be a whole number" in info.value.problem
    assert "[from command line]" in info.value.problem


def test_tls_connectors_need_a_certificate_and_client_auth_needs_a_ca(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        build_config(None, {}, {"connectors": ["tcp://h:1", "ssl://h:2"]})
    assert info.value.key == "tls"
    assert info.value.problem.startswith("connector ssl://h:2 needs a certificate: set tls.cert")
    cert = str(tmp_path / "c.pem")
    for overrides in ({"tls": {"cert": cert, "client_auth": "optional"}, "connectors": ["ssl://h:2"]},
                      {"tls": {"cert": cert}, "connectors": ["ssl://h:2?transport.needClientAuth=true"]}):
        with pytest.raises(ConfigError, match="set tls.ca to the CA bundle"):
            build_config(None, {}, overrides)
    # Without a TLS connector nothing is asked for; the settings are still checked for shape.
    assert BrokerConfig(tls={"client_auth": "required"}).tls.client_auth == "required"  # type: ignore[arg-type]
    with pytest.raises(ConfigError) as info:
        build_config(None, {"BATONMQ_TLS_CLIENT_AUTH": "always"})
    assert info.value.key == "tls.client_auth"
    assert info.value.problem == ("must be one of none, optional, required (got 'always') "
                                  "[from BATONMQ_TLS_CLIENT_AUTH in environment]")
