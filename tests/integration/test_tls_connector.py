"""STOMP over TLS on a real broker: stomp.py, our client and a raw TLS peer, certificates made per run.

The broker runs in-process on both event loops (asyncio and the daemon's uvloop): they do the TLS
handshake in different code, and the peer certificate must reach the session on both.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
import warnings

import pytest
import stomp

from broker.engine.auth import Credentials, Principal
from config.model import TlsSettings
from tests.helpers.server import HOST, running_broker
from tests.helpers.stomppy import Recorder
from tests.helpers.tls import Pki, make_pki, tls_connect_frame
from transports.client import ConnectFailed, connect
from transports.tls import client_context

# OpenSSL's words for a chain that ends in a CA we do not trust (which depends on whether the
# broker sends its CA along).
UNTRUSTED = "self-signed certificate in certificate chain|unable to get local issuer"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


class Recording:
    """Lets everyone in and keeps what each CONNECT offered (called on the broker's loop)."""

    def __init__(self) -> None:
        self.seen: list[Credentials] = []
        self.lock = threading.Lock()

    async def authenticate(self, credentials: Credentials) -> Principal | None:
        with self.lock:
            self.seen.append(credentials)
        return Principal(credentials.login or "anonymous", frozenset())


def tls_settings(pki: Pki, client_auth: str = "none", cert: str = "") -> TlsSettings:
    """The broker's TLS settings; `cert` picks another of its certificates ("expired", "misnamed")."""
    prefix = f"{cert}_" if cert else ""
    return TlsSettings(cert=getattr(pki, f"{prefix}cert"), key=getattr(pki, f"{prefix}key"), ca=pki.ca,
                       client_auth=client_auth)  # type: ignore[arg-type]


def handshake(port: int, context: ssl.SSLContext) -> ssl.SSLSocket:
    raw = socket.create_connection((HOST, port), timeout=3)
    try:
        return context.wrap_socket(raw, server_hostname=HOST)
    except BaseException:
        raw.close()
        raise


def stomppy(port: int, ca: object, cert: object = None) -> tuple[stomp.Connection12, Recorder]:
    conn = stomp.Connection12([(HOST, port)], heartbeats=(0, 0), auto_content_length=True, timeout=3,
                                reconnect_attempts_max=1)
    conn.set_ssl(for_hosts=[(HOST, port)], ca_certs=str(ca), cert_file=str(cert) if cert else None)
    recorder = Recorder()
    conn.set_listener("recorder", recorder)
    conn.connect(wait=True)
    return conn, recorder


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_stomppy_sends_and_receives_over_tls(pki: Pki, loop: str) -> None:
    with running_broker(scheme="ssl", tls=tls_settings(pki), uvloop=loop == "uvloop") as broker:
        conn, recorder = stomppy(broker.port, pki.ca)
        try:
            assert conn.transport.socket.version() in ("TLSv1.2", "TLSv1.3")
            conn.subscribe("/queue/secret", id="s1", ack="auto")
            conn.send("/queue/secret", "over tls", headers={"persistent": "true", "receipt": "r1"})
            assert recorder.wait_receipt("r1", 5)
            message = recorder.messages.get(timeout=5)
            assert message.body == "over tls"
        finally:
            conn.disconnect()


@pytest.mark.parametrize(
    ("trusted", "cert", "refusal"),
    [
        ("other_ca", "", UNTRUSTED),
        ("ca", "expired", "certificate has expired"),
        ("ca", "misnamed", "IP address mismatch"),
    ],
)
def test_stomppy_refuses_a_broker_it_cannot_trust(pki: Pki, trusted: str, cert: str, refusal: str) -> None:
    with running_broker(scheme="ssl", tls=tls_settings(pki, cert=cert)) as broker:
        with pytest.raises(stomp.exception.ConnectFailedException):
            stomppy(broker.port, getattr(pki, trusted))
        # Why, in OpenSSL's words, for the same check with the same trust.
        with pytest.raises(ssl.SSLCertVerificationError, match=refusal):
            handshake(broker.port, ssl.create_default_context(cafile=str(getattr(pki, trusted))))


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_required_client_certificates(pki: Pki, loop: str) -> None:
    auth = Recording()
    settings = tls_settings(pki, client_auth="required")
    with running_broker(scheme="ssl", tls=settings, authenticator=auth, uvloop=loop == "uvloop") as broker:
        # No certificate, an expired one, one from a CA the broker does not trust: never CONNECTED.
        # (A raw peer: under TLS 1.3 the refusal comes after the client's side of the handshake,
        # and stomp.py then sometimes waits for ever instead of failing its connect.)
        for cert in (None, pki.expired_client, pki.foreign_client):
            assert tls_connect_frame(HOST, broker.port, pki.ca, cert) == "", cert
        assert auth.seen == []  # refused in the handshake: the session never saw them
        # A good certificate: connected, and the authenticator sees who it names.
        conn, _ = stomppy(broker.port, pki.ca, pki.client)
        conn.disconnect()
    (credentials,) = auth.seen
    assert credentials.scheme == "ssl"
    assert credentials.peer_certificate is not None
    subject = {key: value for rdn in credentials.peer_certificate["subject"] for key, value in rdn}
    assert subject["commonName"] == "alice"


def test_optional_client_certificates_and_plain_tls_have_no_certificate(pki: Pki) -> None:
    auth = Recording()
    settings = tls_settings(pki, client_auth="optional")
    with running_broker(scheme="ssl", tls=settings, authenticator=auth) as broker:
        assert tls_connect_frame(HOST, broker.port, pki.ca) == "CONNECTED"
        assert tls_connect_frame(HOST, broker.port, pki.ca, pki.client) == "CONNECTED"
        # Optional still means verified: a bad certificate sent is refused.
        assert tls_connect_frame(HOST, broker.port, pki.ca, pki.expired_client) == ""
    assert [c.peer_certificate is not None for c in auth.seen] == [False, True]
    auth.seen.clear()
    with running_broker(scheme="ssl", tls=tls_settings(pki), authenticator=auth) as broker:
        # client_auth none: a client certificate is not even asked for, so none reaches the session.
        assert tls_connect_frame(HOST, broker.port, pki.ca, pki.client) == "CONNECTED"
    assert [c.peer_certificate for c in auth.seen] == [None]


def old_tls(pki: Pki, side: ssl._SSLMethod) -> ssl.SSLContext:
    """A context that speaks TLS 1.0-1.1 only, with every cipher this OpenSSL still has."""
    context = ssl.SSLContext(side)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # that is the point of the test
        context.minimum_version = ssl.TLSVersion.TLSv1
        context.maximum_version = ssl.TLSVersion.TLSv1_1
    context.set_ciphers("ALL:@SECLEVEL=0")
    if side is ssl.PROTOCOL_TLS_SERVER:
        context.load_cert_chain(pki.cert, pki.key)
    else:
        context.load_verify_locations(pki.ca)
    return context


def speaks_old_tls(pki: Pki) -> bool:
    """The control: a server that accepts TLS 1.1 and this client do agree, so a refusal by the
    broker is the broker's minimum version, not a client that cannot speak 1.1 at all."""
    with socket.create_server((HOST, 0)) as listener:
        def serve() -> None:
            with contextlib.suppress(OSError), listener.accept()[0] as peer, \
                    old_tls(pki, ssl.PROTOCOL_TLS_SERVER).wrap_socket(peer, server_side=True):
                pass
        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        try:
            with handshake(listener.getsockname()[1], old_tls(pki, ssl.PROTOCOL_TLS_CLIENT)) as sock:
                return sock.version() in ("TLSv1", "TLSv1.1")
        except ssl.SSLError:
            return False
        finally:
            thread.join(5)


def test_tls_below_1_2_is_refused(pki: Pki) -> None:
    if not speaks_old_tls(pki):
        pytest.skip("this OpenSSL cannot speak TLS 1.1 at all, so the broker's refusal cannot be told apart")
    with running_broker(scheme="ssl", tls=tls_settings(pki)) as broker:
        assert tls_connect_frame(HOST, broker.port, pki.ca, maximum=ssl.TLSVersion.TLSv1_2) == "CONNECTED"
        with pytest.raises(ssl.SSLError):
            handshake(broker.port, old_tls(pki, ssl.PROTOCOL_TLS_CLIENT))


async def test_our_client_checks_the_ca_and_the_host_name(pki: Pki) -> None:
    with running_broker(scheme="ssl", tls=tls_settings(pki)) as broker:
        async with connect(f"ssl://{HOST}:{broker.port}", tls=client_context(pki.ca)) as client:
            sub = await client.subscribe("/queue/ours")
            await client.send("/queue/ours", "hello", persistent=True, receipt=True)
            assert (await sub.get(5)).text == "hello"
            assert client.connection is not None and client.connection.tls
        with pytest.raises(ConnectFailed, match=UNTRUSTED):
            await connect(f"ssl://{HOST}:{broker.port}", tls=client_context(pki.other_ca))
    with running_broker(scheme="ssl", tls=tls_settings(pki, cert="misnamed")) as broker:
        # A certificate from the right CA for another name: the host name dialled is checked.
        with pytest.raises(ConnectFailed, match="IP address mismatch"):
            await connect(f"ssl://{HOST}:{broker.port}", tls=client_context(pki.ca))
