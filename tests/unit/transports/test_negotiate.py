"""Version and heart-beat negotiation (STOMP 1.1/1.2 "Protocol Negotiation", "Heart-beating")."""

from __future__ import annotations

import pytest

from transports.stomp import ProtocolError, negotiate_heartbeat, negotiate_version, parse_heartbeat


@pytest.mark.parametrize(
    ("header", "version"),
    [
        (None, "1.0"),  # no accept-version: a 1.0 client
        ("1.0", "1.0"),
        ("1.1", "1.1"),
        ("1.0,1.1,1.2", "1.2"),
        ("1.2,1.0", "1.2"),
        ("1.0, 1.1", "1.1"),
        ("1.1,2.0", "1.1"),
        ("2.0", None),
        ("", None),
        ("1.3,9", None),
        ("1.0," * 1000, None),  # absurdly long: not worth splitting
    ],
)
def test_negotiate_version(header: str | None, version: str | None) -> None:
    assert negotiate_version(header) == version


@pytest.mark.parametrize(
    ("value", "parsed"),
    [
        (None, (0, 0)),
        ("0,0", (0, 0)),
        ("1000,5000", (1000, 5000)),
        ("10, 20", (10, 20)),
        ("0,9999999999", (0, 9999999999)),
    ],
)
def test_parse_heartbeat(value: str | None, parsed: tuple[int, int]) -> None:
    assert parse_heartbeat(value) == parsed


@pytest.mark.parametrize(
    "value", ["", "1000", "1,2,3", "-1,0", "0,-5", "a,b", "1.5,2", ",", "99999999999,0", "١,٢"]
)
def test_parse_heartbeat_rejects(value: str) -> None:
    with pytest.raises(ProtocolError, match="invalid heart-beat"):
        parse_heartbeat(value)


@pytest.mark.parametrize(
    ("client", "server_send", "server_recv", "result"),
    [
        ((0, 0), 10000, 10000, (0, 0)),  # the client wants none: none either way
        ((5000, 0), 10000, 10000, (0, 10000)),  # client sends, does not want to receive
        ((0, 5000), 10000, 10000, (10000, 0)),  # client receives, cannot send
        ((5000, 20000), 10000, 10000, (20000, 10000)),  # the larger of the two in each direction
        ((30000, 1000), 10000, 10000, (10000, 30000)),
        ((5000, 5000), 0, 10000, (0, 10000)),  # server cannot send
        ((5000, 5000), 10000, 0, (10000, 0)),  # server does not want beats
        ((5000, 5000), 0, 0, (0, 0)),
    ],
)
def test_negotiate_heartbeat(
    client: tuple[int, int], server_send: int, server_recv: int, result: tuple[int, int]
) -> None:
    assert negotiate_heartbeat(client, server_send, server_recv) == result


@pytest.mark.parametrize(
    ("client", "result"),
    [
        ((9999999999, 9999999999), (60000, 60000)),  # 115 days each way: clamped
        ((120000, 0), (0, 60000)),  # a disabled direction stays disabled
        ((0, 0), (0, 0)),
        ((20000, 30000), (30000, 20000)),  # within the clamp: as negotiated
        ((60000, 60001), (60000, 60000)),
    ],
)
def test_negotiate_heartbeat_clamps_to_the_maximum(client: tuple[int, int], result: tuple[int, int]) -> None:
    assert negotiate_heartbeat(client, 10000, 10000, maximum=60000) == result
