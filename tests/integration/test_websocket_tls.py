"""wss://: the WebSocket connector over TLS with a CA and certificates made in the test (trustme),
given the SSLContext the way the TLS settings hand theirs over; a real broker, a real client."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator

import pytest
import trustme
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidMessage

from broker.engine.core import Broker
from config.model import BrokerConfig, Limits
from tests.helpers.rawws import STOMP_SUBPROTOCOLS, split_frame, stomp_frame
from transports.websocket import WsServer

HOST = "127.0.0.1"


@pytest.fixture
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
async def wss(ca: trustme.CA) -> AsyncIterator[tuple[Broker, WsServer]]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(HOST).configure_cert(context)
    context.verify_mode = ssl.CERT_OPTIONAL  # a client certificate, when sent, reaches the session
    ca.configure_trust(context)
    broker = Broker(BrokerConfig(name="tls"))
    await broker.start(None)
    server = WsServer(HOST, 0, broker.handler_factory, broker.limits, scheme="wss", context=context)
    await server.start()
    yield broker, server
    await server.stop(grace=0.5)
    await broker.stop()


def client_context(ca: trustme.CA, certificate: trustme.LeafCert | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    if certificate is not None:
        certificate.configure_cert(context)
    return context


async def test_stomp_over_wss_with_a_client_certificate(ca: trustme.CA, wss: tuple[Broker, WsServer]) -> None:
    broker, server = wss
    url = f"wss://{HOST}:{server.bound_port}/"
    tls = client_context(ca, ca.issue_cert("alice@example.test"))
    async with connect(url, ssl=tls, subprotocols=STOMP_SUBPROTOCOLS, proxy=None) as ws:
        assert ws.subprotocol == "v12.stomp"
        await ws.send(stomp_frame("CONNECT", {"accept-version": "1.2", "host": "x"}).decode())
        assert split_frame(await ws.recv())[0] == "CONNECTED"
        await ws.send(stomp_frame("SUBSCRIBE", {"destination": "/queue/t", "id": "s"}).decode())
        await ws.send(stomp_frame("SEND", {"destination": "/queue/t", "receipt": "r"}, "secret").decode())
        replies = [split_frame(await ws.recv()) for _ in range(2)]
        assert sorted(r[0] for r in replies) == ["MESSAGE", "RECEIPT"]
        assert [r[2] for r in replies if r[0] == "MESSAGE"] == [b"secret"]
        (session,) = broker.sessions
        assert session.conn.scheme == "wss"
        certificate = session.conn.peer_certificate
        assert certificate is not None
        assert ("email", "alice@example.test") in certificate["subjectAltName"]


async def test_an_untrusted_server_certificate_or_plain_ws_is_refused(wss: tuple[Broker, WsServer]) -> None:
    broker, server = wss
    with pytest.raises(ssl.SSLCertVerificationError):
        async with connect(f"wss://{HOST}:{server.bound_port}/", ssl=client_context(trustme.CA()),
                           proxy=None, open_timeout=5):
            pass
    with pytest.raises(InvalidMessage):  # a TLS port answers a plain HTTP upgrade with no HTTP
        async with connect(f"ws://{HOST}:{server.bound_port}/", proxy=None, open_timeout=5):
            pass
    assert not broker.sessions


def test_wss_without_tls_settings_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="wss:// connector needs the TLS settings"):
        WsServer(HOST, 0, lambda link: None, Limits(), scheme="wss")  # type: ignore[arg-type, return-value]


async def test_a_configured_wss_connector_takes_the_tls_settings(ca: trustme.CA, tmp_path) -> None:
    """`wss://` in the connectors is built through the scheme table with the [tls] files, as
    `ssl://` is: the same certificate, the same TLS floor."""
    from config.model import TlsSettings
    from transports.registry import create_server

    leaf = ca.issue_cert(HOST)
    leaf.private_key_and_cert_chain_pem.write_to_path(tmp_path / "broker.pem")
    broker = Broker(BrokerConfig(name="tls"))
    await broker.start(None)
    server = create_server(f"wss://{HOST}:0", broker.handler_factory, Limits(),
                           TlsSettings(cert=tmp_path / "broker.pem"))
    assert isinstance(server, WsServer)
    await server.start()
    try:
        url = f"wss://{HOST}:{server.bound_port}/"
        async with connect(url, ssl=client_context(ca), subprotocols=STOMP_SUBPROTOCOLS, proxy=None) as ws:
            await ws.send(stomp_frame("CONNECT", {"accept-version": "1.2", "host": "x"}).decode())
            assert split_frame(await ws.recv())[0] == "CONNECTED"
    finally:
        await server.stop(grace=0.5)
        await broker.stop()
    with pytest.raises(Exception, match="needs TLS settings"):
        create_server(f"wss://{HOST}:0", broker.handler_factory, Limits(), None)
