"""CONNECT/CONNECTED as pure functions: version choice and heart-beat negotiation (STOMP 1.2)."""

import pytest

from transports.client.errors import ClientError
from transports.client.handshake import (
    accept_connected,
    connect_frame,
    negotiate_heartbeat,
)
from transports.stomp.codec import StompParser, encode
from transports.stomp.frame import Frame, ProtocolError


def test_connect_frame_offers_every_version_and_optional_headers():
    frame = connect_frame("broker1", login="u", passcode="p:w", heartbeat=(100, 200), client_id="c1")
    assert frame.command == "CONNECT"
    assert frame.headers == {"accept-version": "1.0,1.1,1.2", "host": "broker1", "heart-beat": "100,200",
                             "login": "u", "passcode": "p:w", "client-id": "c1"}
    bare = connect_frame("h")
    assert set(bare.headers) == {"accept-version", "host", "heart-beat"}


def test_connect_frame_is_sent_unescaped():
    # STOMP 1.2 "Value Encoding": CONNECT headers are not escaped, so a ':' in a passcode stays raw.
    data = encode(connect_frame("h", passcode="a:b"), version="1.0")
    parser = StompParser()
    parser.feed(data)
    assert parser.next_frame().headers["passcode"] == "a:b"


@pytest.mark.parametrize("heartbeat", [(-1, 0), (0, -5), (86_400_001, 0)])
def test_connect_frame_rejects_nonsense_heartbeats(heartbeat):
    with pytest.raises(ValueError):
        connect_frame("h", heartbeat=heartbeat)


@pytest.mark.parametrize(
    ("ours", "theirs", "expected"),
    [
        ((0, 0), (10_000, 10_000), (0.0, 0.0)),
        ((500, 500), (10_000, 10_000), (10.0, 10.0)),  # the larger of offer and request wins
        ((1000, 0), (0, 300), (1.0, 0.0)),
        ((1000, 2000), (3000, 0), (0.0, 3.0)),  # they will not receive: we send nothing
        ((250, 250), (100, 100), (0.25, 0.25)),
    ],
)
def test_negotiate_heartbeat(ours, theirs, expected):
    assert negotiate_heartbeat(ours, theirs) == expected


def test_malformed_heartbeat_from_broker_is_a_protocol_error():
    for bad in ("10", "a,b", "1,2,3", "-1,0", "99999999999,0"):
        with pytest.raises(ProtocolError):
            accept_connected(Frame("CONNECTED", {"version": "1.2", "heart-beat": bad}), (100, 100))


def test_accept_connected_reads_version_and_heartbeat():
    frame = Frame("CONNECTED", {"version": "1.1", "heart-beat": "0,400", "server": "X/1", "session": "s1"})
    session = accept_connected(frame, (300, 0))
    assert (session.version, session.send_every, session.expect_every) == ("1.1", 0.4, 0.0)
    assert (session.server, session.session) == ("X/1", "s1")
    assert accept_connected(Frame("CONNECTED", {}), (0, 0)).version == "1.0"  # 1.0 brokers omit it


def test_accept_connected_refusals():
    with pytest.raises(ClientError, match="bad credentials"):
        accept_connected(Frame("ERROR", {"message": "bad credentials"}), (0, 0))
    with pytest.raises(ClientError, match="body text"):
        accept_connected(Frame("ERROR", {}, b"body text"), (0, 0))
    with pytest.raises(ClientError, match="expected CONNECTED"):
        accept_connected(Frame("MESSAGE", {}), (0, 0))
    with pytest.raises(ClientError, match="unsupported"):
        accept_connected(Frame("CONNECTED", {"version": "2.0"}), (0, 0))
